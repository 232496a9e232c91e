"""The vSphere source plugin (pyvmomi): connection, inventory, the Forklift-shaped VM document,
power operations and disk reads from the datastores over HTTPS (:mod:`plugins.vsphere.datastore`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from plugins import bundled
from plugins.vsphere import session
from plugins.vsphere.datastore import RETRY_SECONDS, DatastoreDisk, DatastoreFile, DatastoreHttp
from plugins.vsphere.inventory import Snapshot, retrieve
from plugins.vsphere.updates import InventoryCache
from reconciler.hookspecs import hookimpl
from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.sources import (
    OWN_SNAPSHOT_PREFIX,
    Capabilities,
    DemoSource,
    Requirements,
    Rules,
    SourceError,
)
from reconciler.transfer.extents import Extent

PROVIDER_TYPE = "vsphere"
# pyvmomi and lxml come with the extra; every use imports them lazily, so the plugin loads
# without them
REQUIREMENTS = Requirements(extra="vsphere", modules=("pyVmomi", "lxml"))
_POWER = {"poweredOn": "On", "poweredOff": "Off", "suspended": "Off"}


def _is(record: Any, name: str) -> bool:
    """Whether a device record (:mod:`plugins.vsphere.soapparse`) is a ``vim.vm.device.<name>``,
    subtypes included."""
    from pyVmomi import vim

    from plugins.vsphere.soapparse import is_a

    return is_a(record, getattr(vim.vm.device, name))


def _class_name(record: dict[str, Any]) -> str:
    """The device's pyvmomi class name without ``vim.vm.device.`` (``VirtualVideoCard``)."""
    from plugins.vsphere.soapparse import wsdl_class

    cls = wsdl_class(record["_type"])
    return (cls.__name__ if cls is not None else record["_type"]).removeprefix("vim.vm.device.")


def _bus(controller: dict[str, Any] | None) -> str:
    if _is(controller, "VirtualIDEController"):
        return "ide"
    if _is(controller, "VirtualSATAController"):
        return "sata"
    if _is(controller, "VirtualNVMEController"):
        return "nvme"
    return "scsi"


def _controllers(devices: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {d["key"]: d for d in devices if _is(d, "VirtualController")}


def _disk_cbt(
    dev: dict[str, Any], controllers: dict[int, dict[str, Any]], vm_cbt: bool, extra: Any
) -> bool | None:
    """Whether changed block tracking is on for the disk: off with the VM's; else the
    ``<bus><n>:<unit>.ctkEnabled`` advanced setting when it is set (vSphere sets it for each
    disk when CBT is switched on for the VM), None when it is not (on with the VM's)."""
    if not vm_cbt:
        return False
    controller = controllers.get(dev.get("controllerKey"))
    bus_number = (controller or {}).get("busNumber", 0)
    key = f"{_bus(controller)}{bus_number}:{dev.get('unitNumber')}.ctkEnabled"
    for option in extra or ():
        if option.get("key") == key:
            return str(option.get("value")).strip().upper() == "TRUE"
    return None


def _disk_doc(
    dev: dict[str, Any], controllers: dict[int, dict[str, Any]], vm_cbt: bool = False
) -> dict[str, Any]:
    backing = dev.get("backing") or {}
    ds = backing.get("datastore")
    return {
        "key": dev["key"],
        "file": backing.get("fileName", ""),
        "datastore": {"kind": "Datastore", "id": ds._moId if ds else ""},
        "capacity": _capacity(dev),
        "shared": backing.get("sharing", "sharingNone") == "sharingMultiWriter",
        "rdm": _is_rdm(backing),
        "mode": backing.get("diskMode", ""),
        "bus": _bus(controllers.get(dev.get("controllerKey"))),
        # the VM's setting: a disk's own (scsiX:Y.ctkEnabled) is in the VM's advanced
        # settings, too heavy to read for every VM; it is read for warm plans' VMs only
        "changeTrackingEnabled": vm_cbt,
    }


def _is_rdm(backing: dict[str, Any]) -> bool:
    from pyVmomi import vim

    from plugins.vsphere.soapparse import is_a

    return is_a(backing, vim.vm.device.VirtualDisk.RawDiskMappingVer1BackingInfo)


def _capacity(dev: dict[str, Any]) -> int:
    """Bytes; older vCenters (and govmomi's simulator) fill only capacityInKB."""
    return int(dev.get("capacityInBytes") or (dev.get("capacityInKB") or 0) * 1024)


def _nic_network(dev: dict[str, Any]) -> str:
    backing = dev.get("backing") or {}
    port = backing.get("port") or {}
    if port.get("portgroupKey"):
        return port["portgroupKey"]
    net = backing.get("network")
    return net._moId if net is not None else ""


class VsphereConnection:
    """A logged-in vCenter session and the inventory read through it."""

    def __init__(
        self,
        si: Any,
        url: str = "",
        secret: dict[str, str] | None = None,
        settings: dict[str, Any] | None = None,
        hosts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self._login = session.Login(url, secret or {}, si)
        self.retry_seconds = float((settings or {}).get("readRetrySeconds", RETRY_SECONDS))
        self.hosts = dict(hosts or {})
        self._host_logins: dict[str, session.Login] = {}
        self._cache = InventoryCache(si, login=self._new_session)
        self._snap: Snapshot | None = None
        self._datacenters: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def si(self) -> Any:
        return self._login.si

    def _new_session(self) -> Any:
        self._login.relogin()
        return self._login.si

    def _datastore_login(self, host_id: str) -> tuple[session.Login, str | None]:
        """Where a VM's disks are read: its ESXi host's migration network when a Host manifest
        names it (with the host's own credentials, ``dcPath=ha-datacenter``), else vCenter."""
        host = self.hosts.get(host_id)
        if not host:
            return self._login, None
        with self._lock:
            if host_id not in self._host_logins:
                address = str(host.get("ipAddress", "")).strip()
                if address.count(":") > 1 and not address.startswith("["):
                    address = f"[{address}]"  # an IPv6 migration network
                self._host_logins[host_id] = session.Login(f"https://{address}/sdk", host["secret"])
            return self._host_logins[host_id], "ha-datacenter"

    def _datacenter_path(self, obj: Any) -> str:
        """``dcPath`` of the datacenter holding ``obj``: its inventory path (``Folder/DC0``)."""
        from pyVmomi import vim

        key = obj._moId
        if key not in self._datacenters:
            node = obj
            while node is not None and not isinstance(node, vim.Datacenter):
                node = node.parent
            if node is None:
                raise SourceError(f"{key} is in no datacenter")
            root = self.si.content.rootFolder._moId
            names = []
            while node is not None and node._moId != root:  # the root has no parent to ask for
                names.append(node.name)
                node = node.parent
            self._datacenters[key] = "/".join(reversed(names))
        return self._datacenters[key]

    def _snapshot(self) -> Snapshot:
        """The inventory as of the last :meth:`inventory` call (read once if none was made)."""
        with self._lock:
            if self._snap is None:
                self._snap = self._cache.snapshot()
            return self._snap

    def _vm(self, vm_id: str) -> dict[str, Any]:
        vm = self._snapshot().vms.get(vm_id)
        if vm is None:
            raise SourceError(f"vCenter has no VM {vm_id}")
        return vm

    def inventory(self) -> Inventory:
        """Everything vCenter has now: a full read on a new connection, then only the changes
        vCenter reports (WaitForUpdatesEx), so a connection kept across passes stays cheap."""
        try:
            with self._lock:
                snap = self._snap = self._cache.snapshot()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - network or vCenter faults: the provider's state
            where = self._login.endpoint.host
            why = getattr(exc, "msg", None) or str(exc)
            raise SourceError(
                f"reading the inventory of vCenter {where} failed: {type(exc).__name__}: {why}"
            ) from exc
        vms = []
        for moid, p in sorted(snap.vms.items()):
            if p.get("config.template"):
                continue  # templates are not migrated
            devices = p.get("config.hardware.device") or []
            controllers = _controllers(devices)
            disks = tuple(
                Disk(
                    str(d["key"]),
                    _capacity(d),
                    _disk_doc(d, controllers)["datastore"]["id"],
                    file=(d.get("backing") or {}).get("fileName", ""),
                    format="vmdk",
                    bus=_bus(controllers.get(d.get("controllerKey"))),
                )
                for d in devices
                if _is(d, "VirtualDisk")
            )
            nics = tuple(
                Nic(
                    d["deviceInfo"].get("label") if d.get("deviceInfo") else f"nic-{d['key']}",
                    _nic_network(d),
                    d.get("macAddress") or "",
                    _class_name(d).lower(),
                )
                for d in devices
                if _is(d, "VirtualEthernetCard")
            )
            host = p.get("runtime.host")
            vms.append(
                VM(
                    moid,
                    p.get("name", moid),
                    cpus=int(p.get("config.hardware.numCPU") or 1),
                    cores_per_socket=int(p.get("config.hardware.numCoresPerSocket") or 1),
                    memory_mb=int(p.get("config.hardware.memoryMB") or 1024),
                    firmware="efi" if p.get("config.firmware") == "efi" else "bios",
                    guest_os=p.get("config.guestId") or "",
                    power_state=_POWER.get(str(p.get("runtime.powerState")), "Unknown"),
                    disks=disks,
                    nics=nics,
                    host=host._moId if host is not None else "",
                    change_tracking=bool(p.get("config.changeTrackingEnabled")),
                )
            )
        return Inventory(
            vms=vms,
            networks=[Network(k, v.get("name", k)) for k, v in sorted(snap.networks.items())],
            storages=[Storage(k, v.get("name", k)) for k, v in sorted(snap.datastores.items())],
        )

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        """The VM as Forklift's vSphere inventory serves it (rules/vsphere/INPUT.md)."""
        snap, p = self._snapshot(), self._vm(vm_id)
        devices = p.get("config.hardware.device") or []
        controllers = _controllers(devices)
        host_ref = p.get("runtime.host")
        host = snap.hosts.get(host_ref._moId, {}) if host_ref is not None else {}
        parent = host.get("parent")
        cluster = snap.clusters.get(parent._moId, {}) if parent is not None else {}
        snapshots = 0  # the user's: a warm migration's own are not the VM's to report
        tree = p.get("snapshot") or {}
        todo = list(tree.get("rootSnapshotList", ()))
        while todo:
            node = todo.pop()
            snapshots += not (node.get("name") or "").startswith(OWN_SNAPSHOT_PREFIX)
            todo += node.get("childSnapshotList", ())
        current = tree.get("currentSnapshot")
        doc: dict[str, Any] = {
            "id": vm_id,
            "name": p.get("name", ""),
            "uuid": p.get("config.uuid", ""),
            "isTemplate": bool(p.get("config.template")),
            "firmware": p.get("config.firmware", "bios"),
            "powerState": str(p.get("runtime.powerState", "")),
            "connectionState": str(p.get("runtime.connectionState", "")),
            "changeTrackingEnabled": bool(p.get("config.changeTrackingEnabled")),
            "cpuCount": int(p.get("config.hardware.numCPU") or 0),
            "coresPerSocket": int(p.get("config.hardware.numCoresPerSocket") or 0),
            "memoryMB": int(p.get("config.hardware.memoryMB") or 0),
            "guestId": p.get("config.guestId") or "",
            "guestName": p.get("config.guestFullName") or "",
            "cpuHotAddEnabled": bool(p.get("config.cpuHotAddEnabled")),
            "cpuHotRemoveEnabled": bool(p.get("config.cpuHotRemoveEnabled")),
            "memoryHotAddEnabled": bool(p.get("config.memoryHotAddEnabled")),
            "balloonedMemory": int(p.get("summary.quickStats.balloonedMemory") or 0),
            "ipAddress": p.get("guest.ipAddress") or "",
            "snapshotCount": snapshots,
            "disks": [
                _disk_doc(d, controllers, bool(p.get("config.changeTrackingEnabled")))
                for d in devices
                if _is(d, "VirtualDisk")
            ],
            "networks": [
                {"kind": "Network", "id": _nic_network(d)}
                for d in devices
                if _is(d, "VirtualEthernetCard")
            ],
            "devices": [{"kind": _class_name(d)} for d in devices],
            "concerns": [],
        }
        if current is not None and snapshots:
            doc["snapshot"] = {"kind": "VirtualMachineSnapshot", "id": current._moId}
        if host:
            doc["host"] = {
                "id": host_ref._moId,
                "name": host.get("name", ""),
                "inMaintenance": bool(host.get("runtime.inMaintenanceMode")),
                "connectionState": str(host.get("runtime.connectionState", "")),
                "productVersion": host.get("summary.config.product.version", ""),
            }
            if cluster:
                doc["host"]["cluster"] = {
                    "id": parent._moId,
                    "name": cluster.get("name", ""),
                    "drsEnabled": bool(cluster.get("configuration.drsConfig.enabled")),
                    "dasEnabled": bool(cluster.get("configuration.dasConfig.enabled")),
                }
        return doc

    def power_state(self, vm_id: str) -> str:
        obj = self._vm(vm_id)["_obj"]
        return _POWER.get(str(obj.runtime.powerState), "Unknown")

    def power_off(self, vm_id: str, timeout: float) -> None:
        """Guest shutdown when VMware Tools run, else a hard power off; waits up to timeout."""
        obj = self._vm(vm_id)["_obj"]
        if obj.runtime.powerState == "poweredOff":
            return
        deadline = time.monotonic() + timeout
        if obj.guest.toolsRunningStatus == "guestToolsRunning":
            obj.ShutdownGuest()
            while time.monotonic() < deadline and obj.runtime.powerState != "poweredOff":
                time.sleep(1)
        if obj.runtime.powerState != "poweredOff":
            _wait(obj.PowerOffVM_Task(), deadline)

    def power_on(self, vm_id: str) -> None:
        obj = self._vm(vm_id)["_obj"]
        if obj.runtime.powerState != "poweredOn":
            _wait(obj.PowerOnVM_Task(), time.monotonic() + 300)

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str = "") -> DatastoreDisk:
        """The disk's VMDK read from its datastore over HTTPS (flat extents directly, hosted
        sparse ones through their grain tables); with ``snapshot_id``, the disk file that
        snapshot's configuration names (with one snapshot, the base disk frozen at it)."""
        from plugins.vsphere.soapparse import plain

        p = self._vm(vm_id)
        devices = (
            plain(self._snapshot_obj(snapshot_id).config.hardware.device)
            if snapshot_id
            else p.get("config.hardware.device") or []
        )
        disks = (d for d in devices if _is(d, "VirtualDisk"))
        dev = next((d for d in disks if str(d["key"]) == disk_key), None)
        if dev is None:
            raise SourceError(f"VM {p.get('name', vm_id)} has no disk {disk_key}")
        backing = dev.get("backing") or {}
        if _is_rdm(backing):
            raise SourceError(
                f"disk {disk_key} of {p.get('name', vm_id)} is a raw device mapping: it is not a "
                "file on a datastore; convert it to a virtual disk first"
            )
        if backing.get("datastore") is None or not backing.get("fileName"):
            raise SourceError(f"disk {disk_key} of {p.get('name', vm_id)} is on no datastore")
        host = p.get("runtime.host")
        login, dc_path = self._datastore_login(host._moId if host is not None else "")
        dc = dc_path or self._datacenter_path(backing["datastore"])
        f = DatastoreFile.parse(dc, backing["fileName"])
        client = DatastoreHttp(
            login.endpoint.host,
            login.endpoint.port,
            login.policy,
            login.cookie,
            login.relogin,
            self.retry_seconds,
        )
        try:
            return DatastoreDisk(client, f, _capacity(dev))
        except BaseException:
            client.close()
            raise

    # -- snapshots and changed block tracking (the ground warm migration stands on) ---------

    def _snapshot_obj(self, snapshot_id: str) -> Any:
        from pyVmomi import vim

        return vim.vm.Snapshot(snapshot_id, self.si._stub)

    def create_snapshot(self, vm_id: str, name: str, description: str = "") -> str:
        """A snapshot without memory or quiescing (what MTV takes); returns its id."""
        obj = self._vm(vm_id)["_obj"]
        task = obj.CreateSnapshot_Task(
            name=name, description=description, memory=False, quiesce=False
        )
        return _wait(task, time.monotonic() + 600)._moId

    def disk_change_tracking(self, vm_id: str) -> dict[str, bool]:
        """Each disk's changed block tracking, read now for this VM alone: the advanced
        settings it needs (``scsiX:Y.ctkEnabled``) are too heavy to read for every VM."""
        from pyVmomi import vmodl

        obj = self._vm(vm_id)["_obj"]
        pc = vmodl.query.PropertyCollector
        paths = ["config.changeTrackingEnabled", "config.extraConfig", "config.hardware.device"]
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=obj)],
            propSet=[pc.PropertySpec(type=type(obj), pathSet=paths)],
        )
        collector = self.si.RetrieveContent().propertyCollector
        props = retrieve(collector, spec).get(obj._moId, {})
        devices = props.get("config.hardware.device") or []
        controllers = _controllers(devices)
        vm_cbt = bool(props.get("config.changeTrackingEnabled"))
        extra = props.get("config.extraConfig")
        return {
            str(d["key"]): _disk_cbt(d, controllers, vm_cbt, extra) is not False
            for d in devices
            if _is(d, "VirtualDisk")
        }

    def snapshots(self, vm_id: str) -> dict[str, str]:
        """Every snapshot the VM has now, id to name, read through the property collector
        (the inventory cache may lag a task that just ended)."""
        from pyVmomi import vmodl

        obj = self._vm(vm_id)["_obj"]
        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(
            objectSet=[pc.ObjectSpec(obj=obj)],
            propSet=[pc.PropertySpec(type=type(obj), pathSet=["snapshot"])],
        )
        found: dict[str, str] = {}
        for content in self.si.RetrieveContent().propertyCollector.RetrieveContents([spec]):
            for prop in content.propSet:
                todo = list(prop.val.rootSnapshotList) if prop.val is not None else []
                while todo:
                    node = todo.pop()
                    found[node.snapshot._moId] = node.name
                    todo += list(node.childSnapshotList or [])
        return found

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Remove one snapshot (its changes are consolidated into the disk); absent is fine."""
        from pyVmomi import vmodl

        try:
            task = self._snapshot_obj(snapshot_id).RemoveSnapshot_Task(
                removeChildren=False, consolidate=True
            )
        except vmodl.fault.ManagedObjectNotFound:
            return
        _wait(task, time.monotonic() + 1800)

    def change_ids(self, vm_id: str, snapshot_id: str) -> dict[str, str]:
        """Each disk's change id at the snapshot: where the next round's changes start."""
        from pyVmomi import vim

        return {
            str(d.key): getattr(d.backing, "changeId", None) or ""
            for d in self._snapshot_obj(snapshot_id).config.hardware.device
            if isinstance(d, vim.vm.device.VirtualDisk)
        }

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]:
        """The disk areas written between ``change_id`` and the snapshot
        (QueryChangedDiskAreas, asked again from where each answer ends); ``"*"``: every
        allocated area."""
        obj = self._vm(vm_id)["_obj"]
        snap = self._snapshot_obj(snapshot_id)
        out: list[Extent] = []
        start, size = 0, None
        while size is None or start < size:
            info = obj.QueryChangedDiskAreas(
                snapshot=snap, deviceKey=int(disk_key), startOffset=start, changeId=change_id
            )
            out += [Extent(a.start, a.length, False) for a in info.changedArea or []]
            size = size or info.startOffset + info.length
            if info.length <= 0:
                break
            start = info.startOffset + info.length
        return out

    def close(self) -> None:
        try:
            self._cache.close()
        except Exception:  # noqa: BLE001 - the session may already be gone
            pass
        for login in [*self._host_logins.values(), self._login]:
            login.close()


def _wait(task: Any, deadline: float) -> Any:
    """Wait for a vCenter task; returns its result. Reads only ``info.state``, ``info.error``
    and ``info.result``: some servers put a non-entity (a snapshot) in ``info.entity``, which
    pyvmomi refuses to read as a whole ``info``."""
    from pyVmomi import vim

    collector = vim.ServiceInstance("ServiceInstance", task._stub).RetrieveContent()
    while True:
        state, error, result, what = _task_fields(collector.propertyCollector, task)
        if state in ("success", "error"):
            break
        if time.monotonic() > deadline:
            raise SourceError(f"vCenter task {what} did not finish in time")
        time.sleep(0.2)
    if state == "error":
        raise SourceError(f"vCenter task {what} failed: {getattr(error, 'msg', error)}")
    return result


def _task_fields(collector: Any, task: Any) -> tuple[str, Any, Any, str]:
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=task, skip=False)],
        propSet=[
            pc.PropertySpec(
                type=vim.Task,
                pathSet=["info.state", "info.error", "info.result", "info.descriptionId"],
            )
        ],
    )
    res = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
    props = {p.name: p.val for p in res.objects[0].propSet} if res and res.objects else {}
    return (
        str(props.get("info.state", "")),
        props.get("info.error"),
        props.get("info.result"),
        str(props.get("info.descriptionId", task._moId)),
    )


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """The vSphere plugin answers for Provider ``spec.type: vsphere``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's VMware rules (package ``io.konveyor.forklift.vmware``), in ``rules/vsphere/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.vmware", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Snapshots and changed block tracking make warm migration; as MTV's vSphere scheduler,
    the VMs of one ESXi host share its NFC connections, so the in-flight limit is per host."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(warm=True, inflight_per_host=True, guest_conversion=True)


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """The MTV vSphere Secret: the SHA-1 ``thumbprint`` pin beside the shared keys."""
    return ["thumbprint"] if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_requirements(provider_type: str) -> Requirements | None:
    """pyvmomi, from ``pip install 'mtv-gitops[vsphere]'``."""
    return REQUIREMENTS if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_demo(name: str, workspace: Path) -> DemoSource | None:
    """``mtv-gitops demo --warm``: a running VM of the vCenter simulator (see demo.py)."""
    if name != "warm":
        return None
    from plugins.vsphere.demo import VsphereWarmDemo

    return VsphereWarmDemo(workspace)


@hookimpl
def mtv_gitops_connect(
    provider_type: str,
    url: str,
    secret: dict[str, str],
    settings: dict[str, Any],
    hosts: dict[str, dict[str, Any]],
) -> VsphereConnection | None:
    """Log in to the vCenter at ``url`` with the Provider's secret (see session.py)."""
    if provider_type != PROVIDER_TYPE:
        return None
    missing = REQUIREMENTS.problem(PROVIDER_TYPE)
    if missing:
        raise SourceError(missing)
    return VsphereConnection(session.connect(url, secret), url, secret, settings, hosts)
