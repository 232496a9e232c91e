"""Planner inputs for tests: VMs, inventories and reading a decision's conditions."""

from __future__ import annotations

from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.planner.model import PlanDecision
from reconciler.sources import Capabilities

GiB = 1024**3


SRC = ("openshift-mtv", "vsphere")


PLAN = "openshift-mtv/plan"
# what the installed plugins declare, given to the pure planner as data: the source of
# basic_repo (type vsphere) runs warm, counts VMs in flight per host and needs its guests
# converted; ovirt does none of these
CAPS = {
    "vsphere": Capabilities(warm=True, inflight_per_host=True, guest_conversion=True),
    "ovirt": Capabilities(),
}


def vm(id: str, name: str, **kw) -> VM:
    kw.setdefault("disks", (Disk("disk-0", 10 * GiB, "datastore-1"),))
    kw.setdefault("nics", (Nic("nic-0", "network-1", "00:50:56:aa:bb:01", "vmxnet3"),))
    return VM(id, name, **kw)


def inventory(*vms: VM, **kw) -> Inventory:
    return Inventory(
        vms=list(vms),
        networks=[Network("network-1", "VM Network"), Network("network-2", "Storage LAN")],
        storages=[Storage("datastore-1", "fast-ds"), Storage("datastore-2", "slow-ds")],
        **kw,
    )


def conds(d: PlanDecision) -> dict[str, tuple[str, str]]:
    return {c.type: (c.category, c.message) for c in d.conditions}
