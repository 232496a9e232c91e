"""Our default concern ids are Forklift's wherever Forklift raises the same concern.

FORKLIFT holds, per provider type, the concern ids and categories of Forklift's own policies
(kubev2v/forklift, validation/policies/io/konveyor/forklift/<provider>/, read for this table).
Each provider's ``rules/<type>/concern_ids.yaml`` maps our concerns to them; this test checks the
table against the rules and against Forklift's ids.
"""

from __future__ import annotations

import re

import pytest
from ruamel.yaml import YAML

from reconciler.plugin_manager import rule_types
from reconciler.validation.ruleset import default_rules_of, load_rule_set

OWN = "mtv-gitops."

FORKLIFT: dict[str, dict[str, str]] = {
    "vsphere": {
        "vmware.changed_block_tracking.disabled": "Warning",
        "vmware.changed_block_tracking.disk.disabled": "Warning",
        "vmware.consolidation_needed": "Information",
        "vmware.cpu_affinity.detected": "Warning",
        "vmware.cpu_memory.hotplug.enabled": "Warning",
        "vmware.datastore.missing": "Critical",
        "vmware.device.sriov.detected": "Warning",
        "vmware.disk.capacity.invalid": "Critical",
        "vmware.disk.count.exceeds.limit": "Warning",
        "vmware.disk.nvme.detected": "Critical",
        "vmware.disk.rdm.detected": "Critical",
        "vmware.disk.shared.detected": "Warning",
        "vmware.disk_mode.independent": "Critical",
        "vmware.disk_serial.truncated": "Information",
        "vmware.dpm.enabled": "Information",
        "vmware.drs.enabled": "Information",
        "vmware.fault_tolerance.enabled": "Information",
        "vmware.guestDisks.btrfs.unsupported": "Warning",
        "vmware.guestDisks.freespace": "Critical",
        "vmware.guestDisks.key.not_found": "Information",
        "vmware.host_affinity.detected": "Warning",
        "vmware.hostname.default": "Warning",
        "vmware.hostname.empty": "Warning",
        "vmware.numa_affinity.detected": "Warning",
        "vmware.os.unsupported": "Warning",
        "vmware.os.upgrade.recommendation": "Information",
        "vmware.passthrough_device.detected": "Critical",
        "vmware.snapshot.detected": "Information",
        "vmware.tpm.detected": "Warning",
        "vmware.usb_controller.detected": "Warning",
        "vmware.vm.name.invalid": "Warning",
        "vmware.vm_missing_ip.detected": "Warning",
        "vmware.vm_powered_off.detected": "Warning",
    },
    "ovirt": {
        "ovirt.bios.boot_menu.enabled": "Warning",
        "ovirt.cluster.ksm_enabled": "Warning",
        "ovirt.cpu.custom_model.detected": "Warning",
        "ovirt.cpu.pinning_policy.unsupported": "Warning",
        "ovirt.cpu.shares.defined": "Warning",
        "ovirt.cpu.tuning.detected": "Warning",
        "ovirt.disk.capacity.invalid": "Critical",
        "ovirt.disk.count.exceeds.limit": "Warning",
        "ovirt.disk.illegal_images.detected": "Critical",
        "ovirt.disk.illegal_or_locked_status": "Critical",
        "ovirt.disk.interface_type.unsupported": "Warning",
        "ovirt.disk.scsi_reservation.enabled": "Warning",
        "ovirt.disk.shared.detected": "Warning",
        "ovirt.disk.storage_type.unsupported": "Critical",
        "ovirt.display_type.spice.enabled": "Information",
        "ovirt.ha.enabled": "Warning",
        "ovirt.ha.reservation.enabled": "Warning",
        "ovirt.host_devices.mapped": "Warning",
        "ovirt.iothreads.configured": "Information",
        "ovirt.memory.ballooning.enabled": "Information",
        "ovirt.name.invalid": "Warning",
        "ovirt.nic.custom_properties.detected": "Warning",
        "ovirt.nic.interface_type.unsupported": "Warning",
        "ovirt.nic.network_filter.detected": "Warning",
        "ovirt.nic.pci_passthrough.detected": "Warning",
        "ovirt.nic.port_mirroring.detected": "Warning",
        "ovirt.nic.qos.detected": "Warning",
        "ovirt.nic.unplugged.detected": "Warning",
        "ovirt.numa.tuning.detected": "Warning",
        "ovirt.os.unsupported": "Warning",
        "ovirt.placement_policy.affinity_set": "Warning",
        "ovirt.secure_boot.detected": "Warning",
        "ovirt.snapshot.online_memory.detected": "Warning",
        "ovirt.storage.resume_behavior.unsupported": "Information",
        "ovirt.tpm.required_by_os": "Warning",
        "ovirt.usb.enabled": "Warning",
        "ovirt.vm.custom_properties.detected": "Warning",
        "ovirt.vm.status_invalid": "Critical",
        "ovirt.watchdog.enabled": "Warning",
    },
    "openstack": {
        "openstack.bios.boot_menu.enabled": "Warning",
        "openstack.cpu.shares.defined": "Warning",
        "openstack.disk.capacity.invalid": "Critical",
        "openstack.disk.count.exceeds.limit": "Warning",
        "openstack.disk.shared.detected": "Warning",
        "openstack.disk.status.unsupported": "Critical",
        "openstack.disk.unsupported_interface": "Warning",
        "openstack.host_devices.mapped": "Warning",
        "openstack.network.floating_ips.detected": "Warning",
        "openstack.network.vif_model.unsupported": "Warning",
        "openstack.numa_tuning.detected": "Warning",
        "openstack.os.unsupported": "Warning",
        "openstack.secure_boot.detected": "Warning",
        "openstack.vm.name.invalid": "Warning",
        "openstack.vm.status.invalid": "Critical",
        "openstack.watchdog.detected": "Warning",
    },
    "ova": {
        "ova.cpu_affinity.detected": "Warning",
        "ova.cpu_memory.hotplug.enabled": "Warning",
        "ova.disk.capacity.invalid": "Critical",
        "ova.disk.count.exceeds.limit": "Warning",
        "ova.name.invalid": "Warning",
        "ova.source.unsupported": "Warning",
    },
}

_CONCERN = re.compile(r'"id": "([^"]+)",\s*"category": "(\w+)"')


def _table(ptype: str) -> dict:
    return YAML(typ="safe").load((default_rules_of(ptype) / "concern_ids.yaml").read_text())


def _raised(ptype: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in load_rule_set(ptype, None).files:
        for m in _CONCERN.finditer(f.source):
            out.setdefault(m.group(1), set()).add(m.group(2))
    return out


@pytest.mark.parametrize("ptype", rule_types())
def test_the_id_table_is_the_rules(ptype: str) -> None:
    table, raised = _table(ptype)["concerns"], _raised(ptype)
    assert set(table) == set(raised)
    for cid, row in table.items():
        assert raised[cid] == {row["category"]}, cid


@pytest.mark.parametrize("ptype", rule_types())
def test_forklift_ids_and_categories_are_forklifts(ptype: str) -> None:
    forklift = FORKLIFT[ptype]
    for cid, row in _table(ptype)["concerns"].items():
        if row["forklift"] is None:
            assert cid.startswith(OWN), f"{cid}: our own concern needs the {OWN} prefix"
            assert cid[len(OWN) :] not in forklift
        else:
            assert cid in forklift, f"{cid} is not a Forklift concern id"
            assert row["category"] == forklift[cid], cid
            assert row["forklift"].endswith(".rego")


@pytest.mark.parametrize("ptype", rule_types())
def test_every_forklift_concern_is_raised_or_said_why_not(ptype: str) -> None:
    table = _table(ptype)
    missing = set(FORKLIFT[ptype]) - set(table["concerns"])
    assert missing == set(table["not_raised"])
    assert all(len(why) > 40 for why in table["not_raised"].values())
