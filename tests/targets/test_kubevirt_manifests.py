"""VirtualMachine and PVC manifests for a planned VM, and the schema check that guards them."""

from __future__ import annotations

import copy

import pytest

from reconciler.planner.model import DiskPlan, NicPlan, VmPlan
from reconciler.targets.base import TargetError
from reconciler.targets.kubevirt.manifests import (
    PROVISIONER_DEFAULTS,
    StorageSettings,
    disk_claims,
    pvc_manifest,
    vm_manifest,
)
from reconciler.targets.schema import check_manifest

GiB = 1024**3
LABELS = {"plan": "plan", "vmID": "vm-42", "app.kubernetes.io/managed-by": "mtv-gitops"}


def plan(**kw) -> VmPlan:
    base = dict(
        vm_id="vm-42",
        source_name="Web_01",
        target_name="web-01",
        namespace="vms",
        cpus=4,
        cores_per_socket=2,
        memory_mb=6144,
        firmware="bios",
        power_state="On",
        guest_os="rhel8_64Guest",
        disks=(
            DiskPlan("disk-0", 10 * GiB, "web-01-disk-0", "fast", "ReadWriteOnce", "Filesystem"),
            DiskPlan("disk-1", 5 * GiB + 1, "web-01-disk-1", "", "ReadWriteMany", "Block", "scsi"),
        ),
        nics=(
            NicPlan("nic-0", "00:50:56:aa:bb:01", "virtio", "network-1", "pod"),
            NicPlan("nic-1", "", "e1000e", "network-9", "ignored"),
            NicPlan("nic-2", "00:50:56:aa:bb:02", "e1000e", "network-2", "multus", "vlans/lan"),
        ),
        labels=dict(LABELS),
    )
    base.update(kw)
    return VmPlan(**base)


def test_vm_manifest_field_by_field() -> None:
    m = vm_manifest(plan())
    assert (m["apiVersion"], m["kind"]) == ("kubevirt.io/v1", "VirtualMachine")
    assert m["metadata"] == {
        "name": "web-01",
        "namespace": "vms",
        "labels": LABELS,
        "annotations": {
            "forklift.konveyor.io/source-vm-name": "Web_01",
            "forklift.konveyor.io/source-vm-id": "vm-42",
        },
    }
    spec = m["spec"]
    assert spec["runStrategy"] == "Always"
    assert spec["template"]["metadata"] == {"labels": LABELS}
    domain = spec["template"]["spec"]["domain"]
    assert domain["cpu"] == {"sockets": 2, "cores": 2, "threads": 1}
    assert domain["memory"] == {"guest": "6144Mi"}
    assert domain["firmware"] == {"bootloader": {"bios": {}}}
    assert domain["devices"]["disks"] == [
        {"name": "vol-0", "disk": {"bus": "virtio"}, "bootOrder": 1},
        {"name": "vol-1", "disk": {"bus": "scsi"}},
    ]
    assert spec["template"]["spec"]["volumes"] == [
        {"name": "vol-0", "persistentVolumeClaim": {"claimName": "web-01-disk-0"}},
        {"name": "vol-1", "persistentVolumeClaim": {"claimName": "web-01-disk-1"}},
    ]
    # the ignored NIC is left out, and the names stay contiguous
    assert domain["devices"]["interfaces"] == [
        {"name": "net-0", "model": "virtio", "macAddress": "00:50:56:aa:bb:01", "masquerade": {}},
        {"name": "net-1", "model": "e1000e", "macAddress": "00:50:56:aa:bb:02", "bridge": {}},
    ]
    assert spec["template"]["spec"]["networks"] == [
        {"name": "net-0", "pod": {}},
        {"name": "net-1", "multus": {"networkName": "vlans/lan"}},
    ]
    check_manifest(m)


def test_efi_firmware_and_power_state() -> None:
    m = vm_manifest(plan(firmware="efi", power_state="Off", cpus=3, cores_per_socket=1))
    domain = m["spec"]["template"]["spec"]["domain"]
    assert domain["firmware"] == {"bootloader": {"efi": {"secureBoot": False}}}
    assert domain["cpu"] == {"sockets": 3, "cores": 1, "threads": 1}
    assert m["spec"]["runStrategy"] == "Halted"
    assert vm_manifest(plan(power_state="Off"), running=True)["spec"]["runStrategy"] == "Always"
    assert vm_manifest(plan(), running=False)["spec"]["runStrategy"] == "Halted"
    check_manifest(m)


def test_nic_without_mac_has_no_mac_address() -> None:
    nics = (NicPlan("nic-0", "", "virtio", "network-1", "pod"),)
    [iface] = vm_manifest(plan(nics=nics))["spec"]["template"]["spec"]["domain"]["devices"][
        "interfaces"
    ]
    assert iface == {"name": "net-0", "model": "virtio", "masquerade": {}}


def test_pvc_manifest_and_claims() -> None:
    vm = plan()
    p0 = pvc_manifest(vm, vm.disks[0])
    assert p0 == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "web-01-disk-0",
            "namespace": "vms",
            "labels": {**LABELS, "vmDisk": "disk-0"},
            "annotations": {"forklift.konveyor.io/disk-source": "disk-0"},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": "Filesystem",
            # 10 GiB / (1 - 0.055), CDI's default filesystem overhead, in whole MiB
            "resources": {"requests": {"storage": "10836Mi"}},
            "storageClassName": "fast",
        },
    }
    p1 = pvc_manifest(vm, vm.disks[1])
    assert p1["spec"]["resources"]["requests"]["storage"] == "5121Mi"  # rounded up to MiB
    assert "storageClassName" not in p1["spec"]  # the cluster default
    assert (p1["spec"]["accessModes"], p1["spec"]["volumeMode"]) == (["ReadWriteMany"], "Block")
    claims = disk_claims(vm)
    assert [(c.name, c.namespace, c.size) for c in claims] == [
        ("web-01-disk-0", "vms", 10 * GiB),
        ("web-01-disk-1", "vms", 5 * GiB + 1),
    ]
    assert claims[1].manifest == p1
    check_manifest(p0)
    check_manifest(p1)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("spec", "template", "spec", "domain", "cpu", "sockets"),
            "two",
            "VirtualMachine web-01: spec.template.spec.domain.cpu.sockets: 'two' is not of type "
            "'integer'",
        ),
        (
            ("spec", "runStrategy"),
            "Sometimes",
            "VirtualMachine web-01: spec.runStrategy: 'Sometimes' is not one of",
        ),
        (
            ("metadata", "name"),
            "db.primary",
            "VirtualMachine db.primary: metadata.name: 'db.primary' does not match",
        ),
    ],
)
def test_check_manifest_rejects_a_bad_vm_naming_the_field(path, value, message) -> None:
    m = copy.deepcopy(vm_manifest(plan()))
    node = m
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(TargetError) as exc:
        check_manifest(m)
    assert str(exc.value).startswith(message)


def test_check_manifest_rejects_a_bad_mac() -> None:
    m = vm_manifest(plan())
    m["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] = "zz"
    with pytest.raises(TargetError, match=r"interfaces\.0\.macAddress: 'zz' does not match"):
        check_manifest(m)


def test_check_manifest_rejects_a_bad_pvc_naming_the_field() -> None:
    vm = plan()
    p = pvc_manifest(vm, vm.disks[0])
    p["spec"]["accessModes"] = "ReadWriteOnce"
    with pytest.raises(TargetError) as exc:
        check_manifest(p)
    assert str(exc.value) == (
        "PersistentVolumeClaim web-01-disk-0: spec.accessModes: 'ReadWriteOnce' is not of type "
        "'array', 'null'"
    )
    p = pvc_manifest(vm, vm.disks[0])
    p["spec"]["volumeModes"] = "Block"
    with pytest.raises(TargetError, match="'volumeModes' was unexpected"):
        check_manifest(p)


def test_modes_left_open_by_the_map_come_from_the_provisioner_table() -> None:
    """The MTV 2.4 docs' table 2.1, by the storage class's provisioner; unknown: FS + RWO."""
    disks = (
        DiskPlan("d0", GiB, "web-01-disk-0", "ebs", "", ""),
        DiskPlan("d1", GiB, "web-01-disk-1", "files", "", ""),
        DiskPlan("d2", GiB, "web-01-disk-2", "", "", ""),  # the cluster's default class
        DiskPlan("d3", GiB, "web-01-disk-3", "mystery", "", ""),
        DiskPlan("d4", GiB, "web-01-disk-4", "ebs", "ReadWriteMany", "Filesystem"),  # map wins
    )
    storage = StorageSettings(
        provisioners={
            "ebs": "kubernetes.io/aws-ebs",
            "files": "openshift-storage.cephfs.csi.ceph.com",
            "rbd": "openshift-storage.rbd.csi.ceph.com",
            "mystery": "example.com/unknown",
        },
        default_class="rbd",
    )
    got = [
        (p["spec"]["volumeMode"], p["spec"]["accessModes"][0])
        for p in (pvc_manifest(plan(disks=disks), d, storage) for d in disks)
    ]
    assert got == [
        ("Block", "ReadWriteOnce"),
        ("Filesystem", "ReadWriteMany"),
        ("Block", "ReadWriteOnce"),
        ("Filesystem", "ReadWriteOnce"),
        ("Filesystem", "ReadWriteMany"),
    ]
    assert len(PROVISIONER_DEFAULTS) == 11  # every row of the docs' table


def test_filesystem_overhead_is_added_to_filesystem_volumes_only() -> None:
    fs = DiskPlan("d0", 100 * GiB, "a-disk-0", "ext4-on-block", "", "Filesystem")
    block = DiskPlan("d1", 100 * GiB, "a-disk-1", "ext4-on-block", "", "Block")
    storage = StorageSettings(filesystem_overhead=0.1, overhead_by_class={"special": 0.2})
    assert storage.request_bytes(fs) == -(-100 * GiB * 10 // 9 // 2**20) * 2**20
    assert storage.request_bytes(block) == 100 * GiB
    special = DiskPlan("d2", 80 * GiB, "a-disk-2", "special", "", "Filesystem")
    assert storage.request_bytes(special) == 100 * GiB
    claims = disk_claims(plan(disks=(fs, block)), storage)
    assert [c.size for c in claims] == [100 * GiB, 100 * GiB]  # what is copied: the disk
