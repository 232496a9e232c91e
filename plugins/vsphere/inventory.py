"""vSphere inventory in bulk: PropertyCollector retrievals over whole-inventory views, not a call
per VM.

A retrieval walks a ContainerView of the whole inventory and pages through RetrievePropertiesEx
(the next page asked for before this one's records are built), so 1,000 VMs cost a handful of
round trips; :func:`read_all` reads every kind in one. :mod:`plugins.vsphere.updates`
keeps the same :class:`Snapshot` current with WaitForUpdatesEx instead of reading it again.
Both read the answers with lxml into plain records (:mod:`plugins.vsphere.soapparse`): pyvmomi's
deserializer was most of a 5,000-VM read's time.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    "config.files.vmPathName",
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
CLUSTER_PROPS = [
    "name",
    "parent",
    "configuration.drsConfig.enabled",
    "configuration.dasConfig.enabled",
]
NETWORK_PROPS = ["name", "parent"]
DATASTORE_PROPS = ["name", "parent"]
DATACENTER_PROPS = ["name", "parent"]
FOLDER_PROPS = ["name", "parent"]


@dataclass
class Snapshot:
    """Properties by managed object id, per type, as plain records
    (:mod:`plugins.vsphere.soapparse`: data objects are dicts with ``_type``, references are
    pyvmomi managed objects); each object's dict also has ``_obj``, its own reference."""

    vms: dict[str, dict[str, Any]] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    datastores: dict[str, dict[str, Any]] = field(default_factory=dict)
    datacenters: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    """One object type of the snapshot: the field that holds it, its vim type and properties.

    A vim type includes its subtypes, as in vCenter: ``Network`` also reads distributed port
    groups and opaque networks, ``Folder`` also reads datastore clusters (StoragePod).
    """

    field: str
    vim_type: str
    props: tuple[str, ...]

    def vim_class(self) -> Any:
        from pyVmomi import vim

        return getattr(vim, self.vim_type)


KINDS = (
    Kind("vms", "VirtualMachine", tuple(VM_PROPS)),
    Kind("hosts", "HostSystem", tuple(HOST_PROPS)),
    Kind("clusters", "ClusterComputeResource", tuple(CLUSTER_PROPS)),
    Kind("networks", "Network", tuple(NETWORK_PROPS)),
    Kind("datastores", "Datastore", tuple(DATASTORE_PROPS)),
    Kind("datacenters", "Datacenter", tuple(DATACENTER_PROPS)),
    Kind("folders", "Folder", tuple(FOLDER_PROPS)),
)


def view_spec(view: Any, *kinds: Kind) -> Any:
    """A FilterSpec for the ``kinds``' properties on every object a ContainerView holds (one
    PropertySpec per kind)."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    return pc.FilterSpec(
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
        propSet=[
            pc.PropertySpec(type=kind.vim_class(), pathSet=list(kind.props), all=False)
            for kind in kinds
        ],
    )


PAGE = 10_000  # objects per RetrievePropertiesEx answer (vCenter may send fewer)


def retrieve(collector: Any, spec: Any, page: int = PAGE, lxml: bool = True) -> dict[str, dict]:
    """``{moid: {property: value, "_obj": object}}`` for ``spec``, paged through
    RetrievePropertiesEx; unset properties are absent. Values are the plain records of
    :mod:`plugins.vsphere.soapparse`, read by lxml (``lxml=False``: by pyvmomi, then made
    plain, the reference the tests compare with)."""
    from pyVmomi import vmodl

    out: dict[str, dict] = {}
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page)
    for res in pages(collector, spec, options, lxml):
        for obj in res.get("objects", ()):
            props = {p["name"]: p.get("val") for p in obj.get("propSet", ())}
            props["_obj"] = obj["obj"]
            out[obj["obj"]._moId] = props
    return out


def pages(collector: Any, spec: Any, options: Any, lxml: bool = True) -> Iterator[dict]:
    """RetrievePropertiesEx's answers for ``spec``, page after page (ContinueRetrievePropertiesEx
    with each page's token).

    Read by lxml, the next page is asked for as soon as this one is parsed (its token is near
    the top), without waiting for its answer: vCenter prepares it while this page's records
    are built, and it is read afterwards. No thread reads it meanwhile: a thread feeding lxml
    while this one builds records takes the GIL back at every piece of the answer, and the
    two then run slower together than one after the other."""
    from plugins.vsphere.soapparse import ask, fetch, invoke, receive, streams

    if not lxml or not streams(collector):
        res = invoke(collector, "RetrievePropertiesEx", [spec], options, lxml=lxml)
        while res is not None:
            yield res
            if not res.get("token"):
                return
            res = invoke(collector, "ContinueRetrievePropertiesEx", res["token"], lxml=lxml)
        return
    current = fetch(collector, "RetrievePropertiesEx", [spec], options)
    following = None
    try:
        while True:
            token = current.text("token")
            following = ask(collector, "ContinueRetrievePropertiesEx", token) if token else None
            res = current.records()
            if res is not None:
                yield res
            if following is None:
                return
            current, following = receive(following), None
    finally:
        if following is not None:  # a failed page or a caller that stopped reading
            following.cancel()


def collect(si: Any, kind: Kind, page: int = PAGE, lxml: bool = True) -> dict[str, dict]:
    """``{moid: {property: value, "_obj": object}}`` for every object of ``kind`` below the
    root folder."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [kind.vim_class()], True)
    try:
        return retrieve(content.propertyCollector, view_spec(view, kind), page, lxml)
    finally:
        view.Destroy()


def read_all(si: Any, lxml: bool = True) -> Snapshot:
    """The whole inventory in one paged retrieval: a ContainerView of every kind's type and a
    PropertySpec per kind, so the small kinds cost no round trips of their own (4 calls in
    all; no state left on the server). The kinds' types are disjoint, so an object's class
    says which table it belongs to."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [k.vim_class() for k in KINDS], True
    )
    try:
        found = retrieve(content.propertyCollector, view_spec(view, *KINDS), lxml=lxml)
    finally:
        view.Destroy()
    snap = Snapshot()
    for moid, props in found.items():
        kind = next((k for k in KINDS if isinstance(props["_obj"], k.vim_class())), None)
        if kind is not None:
            getattr(snap, kind.field)[moid] = props
    return snap


def datacenter_of(snapshot: Snapshot, moid: str) -> str | None:
    """The name of the Datacenter that holds ``moid``, found by walking ``parent`` up; datastore
    URLs (``/folder/...?dcPath=``) need it.

    None when the walk leaves the snapshot: a standalone host's parent is a ComputeResource
    and a vApp's VM has no ``parent``, and neither is read.
    """
    tables = (
        snapshot.datacenters,
        snapshot.folders,
        snapshot.vms,
        snapshot.datastores,
        snapshot.networks,
        snapshot.clusters,
        snapshot.hosts,
    )
    seen: set[str] = set()
    current: str | None = moid
    while current is not None and current not in seen:
        if current in snapshot.datacenters:
            return snapshot.datacenters[current].get("name")
        seen.add(current)
        props = next((t[current] for t in tables if current in t), None)
        parent = props.get("parent") if props is not None else None
        current = parent._moId if parent is not None else None
    return None
