"""vSphere inventory in bulk: one PropertyCollector retrieval per object type, not a call per VM.

Each retrieval walks a ContainerView of the whole inventory and pages through
RetrievePropertiesEx, so 1,000 VMs cost a handful of round trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VM_PROPS = [
    "name",
    "parent",
    "config.template",
    "config.uuid",
    "config.hardware.numCPU",
    "config.hardware.numCoresPerSocket",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.firmware",
    "config.changeTrackingEnabled",
    "config.guestId",
    "config.guestFullName",
    "config.cpuHotAddEnabled",
    "config.cpuHotRemoveEnabled",
    "config.memoryHotAddEnabled",
    "runtime.powerState",
    "runtime.connectionState",
    "runtime.host",
    "snapshot",
    "guest.ipAddress",
    "summary.quickStats.balloonedMemory",
]
HOST_PROPS = [
    "name",
    "parent",
    "runtime.inMaintenanceMode",
    "runtime.connectionState",
    "summary.config.product.version",
]
CLUSTER_PROPS = ["name", "configuration.drsConfig.enabled", "configuration.dasConfig.enabled"]


@dataclass
class Snapshot:
    """Raw properties by managed object id, per type."""

    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    datastores: dict[str, dict[str, Any]] = field(default_factory=dict)


def collect(si: Any, obj_type: Any, props: list[str], page: int = 1000) -> dict[str, dict]:
    """``{moid: {property: value}}`` for every object of ``obj_type`` below the root folder."""
    from pyVmomi import vim, vmodl

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [obj_type], True)
    pc = vmodl.query.PropertyCollector
    try:
        spec = pc.FilterSpec(
            objectSet=[
                pc.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        pc.TraversalSpec(
                            name="view", path="view", skip=False, type=vim.view.ContainerView
                        )
                    ],
                )
            ],
            propSet=[pc.PropertySpec(type=obj_type, pathSet=props, all=False)],
        )
        out: dict[str, dict] = {}
        res = content.propertyCollector.RetrievePropertiesEx(
            [spec], pc.RetrieveOptions(maxObjects=page)
        )
        while res is not None:
            for obj in res.objects:
                out[obj.obj._moId] = {p.name: p.val for p in obj.propSet} | {"_obj": obj.obj}
            if not res.token:
                break
            res = content.propertyCollector.ContinueRetrievePropertiesEx(res.token)
        return out
    finally:
        view.Destroy()


def read_all(si: Any) -> Snapshot:
    from pyVmomi import vim

    return Snapshot(
        vms=collect(si, vim.VirtualMachine, VM_PROPS),
        hosts=collect(si, vim.HostSystem, HOST_PROPS),
        clusters=collect(si, vim.ClusterComputeResource, CLUSTER_PROPS),
        networks=collect(si, vim.Network, ["name"]),
        datastores=collect(si, vim.Datastore, ["name"]),
    )
