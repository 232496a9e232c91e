"""Every default oVirt rule (``rules/ovirt/``) run against VMs read from the test engine
through the plugin: two VMs set up in the engine (with ovirtsdk4's types) to raise every
concern between them, and the clean VMs of the world raise nothing Critical."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from plugins import bundled
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.validation.service import ERROR_ID, FAILED_ID, Validator
from tests.support.ovirt_engine import World, _id, _link, qcow2_with_holes, raw_image

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
# a VM with more than 165 disk attachments is not made here: 166 qemu-nbd exports for one rule
NOT_MADE = {"ovirt.disk.count.exceeds.limit"}


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Validator]:
    store = ProgressStore(tmp_path_factory.mktemp("validation") / "progress.db")
    v = Validator(store, eval_timeout=60.0)
    yield v
    v.close()
    store.close()


def _flagged(world: World, folder: Path) -> tuple[str, str]:
    from ovirtsdk4 import types as t

    e = world.engine
    one = qcow2_with_holes(folder / "a1.qcow2", 4 * MiB, [])
    two = raw_image(folder / "a2.raw", 4 * MiB, [])
    three = raw_image(folder / "b1.raw", 4 * MiB, [])
    four = raw_image(folder / "b2.raw", 4 * MiB, [])
    mirror = t.VnicProfile(
        id=_id(),
        name="mirror",
        network=_link(t.Network, "networks", e.network("vlan10").id),
        port_mirroring=True,
        pass_through=t.VnicPassThrough(mode=t.VnicPassThroughMode.ENABLED),
        network_filter=t.NetworkFilter(id=_id(), name="vdsm-no-mac-spoofing"),
        qos=t.Qos(id=_id()),
        custom_properties=[t.CustomProperty(name="queues", value="4")],
    )
    e.profiles[mirror.id] = mirror
    a = e.add_vm(
        "Flagged_A",
        [(one, "qcow2", "data1", "ide"), (two, "raw", "data2", "virtio")],
        [("nic1", "56:6f:1a:00:01:01", "mirror"), ("nic2", "56:6f:1a:00:01:02", "vlan10")],
        status="suspended",
        bios="q35_secure_boot",
        os_type="rhel_6x64",
    )
    b = e.add_vm(
        "flagged-b",
        [(three, "raw", "data1", "virtio"), (four, "raw", "data2", "virtio")],
        [],
        status="not_responding",
        bios="cluster_default",
    )
    with e.lock:
        va = e.vms[a]
        vm = va.vm
        vm.tpm_enabled = True
        vm.usb = t.Usb(enabled=True)
        vm.high_availability = t.HighAvailability(enabled=True)
        vm.placement_policy = t.VmPlacementPolicy(affinity=t.VmAffinity.PINNED)
        vm.cpu_shares = 512
        vm.custom_cpu_model = "Haswell-noTSX"
        vm.cpu_pinning_policy = t.CpuPinningPolicy.DEDICATED
        vm.cpu.cpu_tune = t.CpuTune(vcpu_pins=[t.VcpuPin(vcpu=0, cpu_set="0-1")])
        vm.io = t.Io(threads=4)
        vm.memory_policy = t.MemoryPolicy(ballooning=True)
        vm.display = t.Display(type=t.DisplayType.SPICE)
        vm.bios.boot_menu = t.BootMenu(enabled=True)
        vm.storage_error_resume_behaviour = t.VmStorageErrorResumeBehaviour.KILL
        vm.custom_properties = [t.CustomProperty(name="hugepages", value="1048576")]
        vm.has_illegal_images = True
        va.watchdogs.append(
            t.Watchdog(id=_id(), action=t.WatchdogAction.RESET, model=t.WatchdogModel.I6300ESB)
        )
        va.host_devices.append(
            t.HostDevice(
                id=_id(),
                capability="pci",
                product=t.Product(name="GK104GL"),
                vendor=t.Vendor(name="NVIDIA"),
            )
        )
        va.numa_nodes.append(
            t.VirtualNumaNode(id=_id(), index=0, numa_node_pins=[t.NumaNodePin(index=1)])
        )
        va.snapshots.append(
            t.Snapshot(
                id=_id(),
                description="before upgrade",
                snapshot_type=t.SnapshotType.REGULAR,
                snapshot_status=t.SnapshotStatus.OK,
                persist_memorystate=True,
            )
        )
        shared = e.disks[va.attachments[1].disk.id].disk
        shared.shareable = True
        shared.storage_type = t.DiskStorageType.LUN
        va.attachments[1].uses_scsi_reservation = True
        va.nics[0].interface = t.NicInterface.PCI_PASSTHROUGH
        va.nics[1].interface = t.NicInterface.SPAPR_VLAN
        va.nics[1].plugged = False
        vb = e.vms[b]
        vb.vm.placement_policy = t.VmPlacementPolicy(affinity=t.VmAffinity.MIGRATABLE)
        bad = e.disks[vb.attachments[0].disk.id].disk
        bad.status = t.DiskStatus.ILLEGAL
        bad.provisioned_size = 0
        other = e.disks[vb.attachments[1].disk.id].disk
        other.storage_type = t.DiskStorageType.CINDER
        e.cluster.ha_reservation = True
        e.cluster.ksm = t.Ksm(enabled=True)
        e.cluster.bios_type = t.BiosType.Q35_SECURE_BOOT
    return a, b


def test_every_default_ovirt_rule_fires_on_vms_read_from_the_engine(
    world: World, validator: Validator, tmp_path: Path
) -> None:
    a, b = _flagged(world, tmp_path)
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        inv = conn.inventory()
        docs = {vm.id: conn.validation_input(vm.id) for vm in inv.vms}
    finally:
        conn.close()
    state = validator.prepare("ovirt", None)
    assert state.errors == []
    verdicts = validator.validate("rules/ovirt", "ovirt", docs)
    ids = {vm_id: {c.get("id") for c in v.concerns} for vm_id, v in verdicts.items()}
    for concerns in ids.values():
        assert not concerns & {ERROR_ID, FAILED_ID}, concerns
    declared = set(
        YAML(typ="safe").load(bundled("rules", "ovirt") / "concern_ids.yaml")["concerns"]
    )
    raised = ids[a] | ids[b]
    assert declared - NOT_MADE - raised == set(), "not raised through the plugin"
    assert raised <= declared
    for clean in (world.web, world.db):  # the world's VMs: nothing that stops a plan
        critical = [c for c in verdicts[clean].concerns if c.get("category") == "Critical"]
        assert critical == [], critical
