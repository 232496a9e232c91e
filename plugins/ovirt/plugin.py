"""The oVirt / RHV source plugin (ovirtsdk4): connection, inventory, the Forklift-shaped VM
document, power operations and disk reads through image transfers and the imageio daemon
(:mod:`plugins.ovirt.imageio`).

Guests on oVirt already run on KVM with virtio: no conversion is needed (the capability says
so, and the pipeline's ConvertGuest phase says "not needed").
"""

from __future__ import annotations

import logging
import time
from typing import Any

from plugins import bundled
from plugins.ovirt import session
from plugins.ovirt.backup import Backups
from plugins.ovirt.imageio import TransferDisk
from plugins.ovirt.inventory import InventoryCache, Snapshot, VmRecord
from reconciler.hookspecs import hookimpl
from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.sources import (
    OWN_SNAPSHOT_PREFIX,
    Capabilities,
    Requirements,
    Rules,
    SourceError,
)
from reconciler.transfer.extents import Extent

PROVIDER_TYPE = "ovirt"
# ovirtsdk4 comes with the extra; every use imports it lazily, so the plugin loads without it
REQUIREMENTS = Requirements(extra="ovirt", modules=("ovirtsdk4",))
log = logging.getLogger(__name__)

_ON = {
    "up",
    "powering_up",
    "powering_down",
    "reboot_in_progress",
    "migrating",
    "wait_for_launch",
    "paused",
    "saving_state",
    "restoring_state",
}
_OFF = {"down", "suspended"}
_BUS = {
    "virtio": "virtio",
    "virtio_scsi": "scsi",
    "sata": "sata",
    "ide": "ide",
    "spapr_vscsi": "scsi",
}
SHUTDOWN_SECONDS = 300.0  # an ACPI shutdown gets this long before the VM is stopped
POLL = 0.5


def _v(value: Any) -> str:
    """An ovirtsdk4 enum's value ("" for None)."""
    return str(getattr(value, "value", value) or "")


def power_of(status: str) -> str:
    return "On" if status in _ON else "Off" if status in _OFF else "Unknown"


def _bios(vm: Any, cluster: Any) -> str:
    bios = _v(vm.bios.type) if vm.bios is not None else ""
    if bios in ("", "cluster_default") and cluster is not None:
        return _v(cluster.bios_type)
    return bios


def _firmware(bios: str) -> str:
    return "efi" if bios in ("q35_ovmf", "q35_secure_boot") else "bios"


class OvirtConnection:
    """A logged-in engine session and the inventory read through it."""

    def __init__(self, login: session.Login, settings: dict[str, Any] | None = None) -> None:
        settings = settings or {}
        self._login = login
        self.proxy = str(settings.get("transferProxy", "")).strip().lower() == "true"
        self.retry_seconds = float(settings.get("readRetrySeconds", 30.0))
        self.shutdown_seconds = float(settings.get("shutdownTimeoutSeconds", SHUTDOWN_SECONDS))
        self._cache = InventoryCache(self._login.system)
        self._snap: Snapshot | None = None
        self._backups = Backups(login, self.proxy, self.retry_seconds)

    @property
    def cache(self) -> InventoryCache:
        return self._cache

    def _snapshot(self) -> Snapshot:
        if self._snap is None:
            with self._login.lock:
                self._snap = self._cache.snapshot()
        return self._snap

    def _record(self, vm_id: str) -> VmRecord:
        rec = self._snapshot().vms.get(vm_id)
        if rec is None:
            raise SourceError(f"the oVirt engine has no VM {vm_id}")
        return rec

    def _read(self, what: str, fn: Any) -> Any:
        """An engine call; its faults become SourceErrors that name what was asked."""
        import ovirtsdk4 as sdk

        try:
            with self._login.lock:
                return fn()
        except sdk.Error as exc:
            raise SourceError(
                f"the oVirt engine {self._login.endpoint.host}: {what}: {exc}"
            ) from exc

    # -- inventory -------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """The whole engine on a new connection, then the VMs its events name (inventory.py)."""
        import ovirtsdk4 as sdk

        try:
            with self._login.lock:
                snap = self._snap = self._cache.snapshot()
        except SourceError:
            raise
        except sdk.Error as exc:
            raise SourceError(
                f"reading the inventory of the oVirt engine {self._login.endpoint.host} failed: "
                f"{exc}"
            ) from exc
        vms = [self._vm_record(snap, rec) for _, rec in sorted(snap.vms.items())]
        networks = [Network(n.id, n.name) for n in sorted(snap.networks.values(), key=_id)]
        for p in sorted(snap.profiles.values(), key=_id):
            net = snap.networks.get(p.network.id) if p.network is not None else None
            name = f"{net.name}/{p.name}" if net is not None else p.name
            networks.append(Network(p.id, name, parent=net.id if net is not None else ""))
        return Inventory(
            vms=vms,
            networks=networks,
            storages=[
                Storage(s.id, s.name) for s in sorted(snap.storage_domains.values(), key=_id)
            ],
        )

    def _vm_record(self, snap: Snapshot, rec: VmRecord) -> VM:
        vm = rec.vm
        cluster = snap.clusters.get(vm.cluster.id) if vm.cluster is not None else None
        topo = vm.cpu.topology if vm.cpu is not None and vm.cpu.topology is not None else None
        sockets = int(topo.sockets or 1) if topo else 1
        cores = int(topo.cores or 1) if topo else 1
        threads = int(topo.threads or 1) if topo else 1
        disks = []
        for a in rec.attachments:
            d = snap.disks.get(a.disk.id)
            if d is None:
                continue
            sd = d.storage_domains[0].id if d.storage_domains else ""
            disks.append(
                Disk(
                    d.id,
                    int(d.provisioned_size or 0),
                    sd,
                    file=d.alias or d.name or d.id,
                    format="qcow2" if _v(d.format) == "cow" else "raw",
                    bus=_BUS.get(_v(a.interface), "virtio"),
                )
            )
        nics = tuple(
            Nic(
                n.name or n.id,
                n.vnic_profile.id if n.vnic_profile is not None else "",
                n.mac.address if n.mac is not None else "",
                _v(n.interface) or "virtio",
            )
            for n in rec.nics
        )
        return VM(
            vm.id,
            vm.name,
            cpus=sockets * cores * threads,
            cores_per_socket=cores * threads,
            memory_mb=int(vm.memory or 0) // (1024 * 1024) or 1024,
            firmware=_firmware(_bios(vm, cluster)),
            guest_os=vm.os.type if vm.os is not None and vm.os.type else "",
            power_state=power_of(_v(vm.status)),
            disks=tuple(disks),
            nics=nics,
            host=vm.host.id if vm.host is not None and vm.host.id else "",
            # no VM-wide switch: incremental backup is each disk's (``disk.backup``), which
            # the planner reads through disk_change_tracking for a warm plan's VMs
            change_tracking=True,
        )

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        """The VM as Forklift's oVirt inventory serves it (rules/ovirt/INPUT.md)."""
        snap, rec = self._snapshot(), self._record(vm_id)
        vm = rec.vm
        cluster = snap.clusters.get(vm.cluster.id) if vm.cluster is not None else None
        topo = vm.cpu.topology if vm.cpu is not None and vm.cpu.topology is not None else None
        attachments = []
        illegal = bool(vm.has_illegal_images)
        for a in rec.attachments:
            d = snap.disks.get(a.disk.id)
            disk: dict[str, Any] = {"id": a.disk.id}
            if d is not None:
                disk.update(
                    name=d.alias or d.name or "",
                    status=_v(d.status),
                    shared=bool(d.shareable),
                    storageType=_v(d.storage_type),
                    provisionedSize=int(d.provisioned_size or 0),
                    actualSize=int(d.actual_size or 0),
                    storageDomain=d.storage_domains[0].id if d.storage_domains else "",
                    format=_v(d.format),
                )
                illegal = illegal or _v(d.status) == "illegal"
            attachments.append(
                {
                    "id": a.id,
                    "interface": _v(a.interface),
                    "scsiReservation": bool(a.uses_scsi_reservation),
                    "disk": disk,
                }
            )
        nics = []
        for n in rec.nics:
            p = snap.profiles.get(n.vnic_profile.id) if n.vnic_profile is not None else None
            profile: dict[str, Any] = {}
            if p is not None:
                profile = {
                    "id": p.id,
                    "name": p.name or "",
                    "network": p.network.id if p.network is not None else "",
                    "portMirroring": bool(p.port_mirroring),
                    "passThrough": p.pass_through is not None
                    and _v(p.pass_through.mode) == "enabled",
                    "networkFilter": _filter_name(p),
                    "qos": p.qos.id if p.qos is not None and p.qos.id else "",
                    "properties": _properties(p.custom_properties),
                }
            nics.append(
                {
                    "id": n.id,
                    "name": n.name or "",
                    "interface": _v(n.interface),
                    "plugged": bool(n.plugged),
                    "mac": n.mac.address if n.mac is not None else "",
                    "profile": profile,
                }
            )
        doc: dict[str, Any] = {
            "id": vm.id,
            "name": vm.name or "",
            "description": vm.description or "",
            "status": _v(vm.status),
            "osType": vm.os.type if vm.os is not None and vm.os.type else "",
            "guestName": _guest_name(vm),
            "tpmEnabled": bool(vm.tpm_enabled),
            "bios": _v(vm.bios.type) if vm.bios is not None else "",
            "bootMenuEnabled": bool(
                vm.bios is not None and vm.bios.boot_menu is not None and vm.bios.boot_menu.enabled
            ),
            "cpuSockets": int(topo.sockets or 0) if topo else 0,
            "cpuCores": int(topo.cores or 0) if topo else 0,
            "cpuThreads": int(topo.threads or 0) if topo else 0,
            "cpuShares": int(vm.cpu_shares or 0),
            "cpuPinningPolicy": _v(vm.cpu_pinning_policy),
            "cpuAffinity": _cpu_affinity(vm),
            "customCpuModel": vm.custom_cpu_model or "",
            "memory": int(vm.memory or 0),
            "balloonedMemory": bool(vm.memory_policy is not None and vm.memory_policy.ballooning),
            "ioThreads": int(vm.io.threads or 0) if vm.io is not None else 0,
            "display": _v(vm.display.type) if vm.display is not None else "",
            "haEnabled": bool(vm.high_availability is not None and vm.high_availability.enabled),
            "usbEnabled": bool(vm.usb is not None and vm.usb.enabled),
            "placementPolicyAffinity": _v(vm.placement_policy.affinity)
            if vm.placement_policy is not None
            else "",
            "storageErrorResumeBehaviour": _v(vm.storage_error_resume_behaviour),
            "hasIllegalImages": illegal,
            "numaNodeAffinity": [
                str(pin.index) for n in rec.numa_nodes for pin in n.numa_node_pins or ()
            ],
            "properties": _properties(vm.custom_properties),
            "hostDevices": [
                {
                    "capability": h.capability or "",
                    "product": (h.product.name or h.product.id or "") if h.product else "",
                    "vendor": (h.vendor.name or h.vendor.id or "") if h.vendor else "",
                }
                for h in rec.host_devices
            ],
            "watchDogs": [
                {"id": w.id or "", "action": _v(w.action), "model": _v(w.model)}
                for w in rec.watchdogs
            ],
            "snapshots": [
                {
                    "id": s.id,
                    "description": s.description or "",
                    "type": _v(s.snapshot_type),
                    "persistMemory": bool(s.persist_memorystate),
                }
                for s in rec.snapshots
                if not (s.description or "").startswith(OWN_SNAPSHOT_PREFIX)
            ],
            "diskAttachments": attachments,
            "nics": nics,
            "concerns": [],
        }
        if cluster is not None:
            doc["cluster"] = {
                "id": cluster.id,
                "name": cluster.name or "",
                "biosType": _v(cluster.bios_type),
                "haReservation": bool(cluster.ha_reservation),
                "ksmEnabled": bool(cluster.ksm is not None and cluster.ksm.enabled),
            }
        host = snap.hosts.get(vm.host.id) if vm.host is not None and vm.host.id else None
        if host is not None:
            doc["host"] = {"id": host.id, "name": host.name or "", "status": _v(host.status)}
        return doc

    # -- power -----------------------------------------------------------------------------

    def _status(self, vm_id: str) -> str:
        service = self._login.system().vms_service().vm_service(vm_id)
        return _v(self._read(f"reading VM {vm_id}", service.get).status)

    def power_state(self, vm_id: str) -> str:
        return power_of(self._status(vm_id))

    def power_off(self, vm_id: str, timeout: float) -> None:
        """An ACPI shutdown, then a stop when the guest has not gone down after
        ``shutdownTimeoutSeconds`` (the Provider's setting); waits up to ``timeout``."""
        service = self._login.system().vms_service().vm_service(vm_id)
        if power_of(self._status(vm_id)) == "Off":
            return
        deadline = time.monotonic() + timeout
        self._read(f"shutting down VM {vm_id}", service.shutdown)
        soft = time.monotonic() + min(self.shutdown_seconds, timeout)
        while self._status(vm_id) not in _OFF:
            if time.monotonic() > soft:
                break
            time.sleep(POLL)
        if self._status(vm_id) not in _OFF:
            log.info("VM %s did not shut down in %.0fs: stopping it", vm_id, self.shutdown_seconds)
            self._read(f"stopping VM {vm_id}", service.stop)
            while self._status(vm_id) not in _OFF:
                if time.monotonic() > deadline:
                    raise SourceError(f"VM {vm_id} is still not down after {timeout:.0f}s")
                time.sleep(POLL)
        self._snap = None  # the inventory read next sees the change through the events

    def power_on(self, vm_id: str) -> None:
        service = self._login.system().vms_service().vm_service(vm_id)
        if power_of(self._status(vm_id)) == "On":
            return
        self._read(f"starting VM {vm_id}", service.start)
        deadline = time.monotonic() + 300
        while self._status(vm_id) != "up":
            if time.monotonic() > deadline:
                raise SourceError(f"VM {vm_id} did not come up in 300s")
            time.sleep(POLL)
        self._snap = None

    # -- disks -----------------------------------------------------------------------------

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str = "") -> TransferDisk:
        """The disk's guest-visible bytes through an image transfer, made on first read
        (through the VM's host's imageio daemon, or the engine's proxy with
        ``transferProxy: "true"`` in the Provider's settings), as the backup ``snapshot_id``
        holds it when given (a warm migration's). Reads the VM's attachments and the disk
        now, not the whole inventory: a transfer Job opens one disk."""
        import ovirtsdk4 as sdk

        if snapshot_id:
            return self._backups.open_disk(vm_id, disk_key, snapshot_id)

        system = self._login.system()
        vm_service = system.vms_service().vm_service(vm_id)
        try:
            with self._login.lock:
                attachments = vm_service.disk_attachments_service().list()
                disk = system.disks_service().disk_service(disk_key).get()
        except sdk.NotFoundError as exc:
            raise SourceError(f"the oVirt engine has no VM {vm_id} or disk {disk_key}") from exc
        except sdk.Error as exc:
            raise SourceError(
                f"the oVirt engine {self._login.endpoint.host}: reading disk {disk_key} of VM "
                f"{vm_id}: {exc}"
            ) from exc
        name = disk.alias or disk.name or disk_key
        if not any(a.disk is not None and a.disk.id == disk_key for a in attachments):
            raise SourceError(f"disk {name} is not attached to VM {vm_id}")
        if _v(disk.storage_type) not in ("", "image"):
            raise SourceError(
                f"disk {name} of VM {vm_id} is a {_v(disk.storage_type)} disk, not an image on "
                "a storage domain: it cannot be downloaded"
            )
        return TransferDisk(
            self._login,
            disk_key,
            int(disk.provisioned_size or 0),
            name,
            proxy=self.proxy,
            retry_seconds=self.retry_seconds,
        )

    # -- warm migration: incremental backups (backup.py) ---------------------------------

    def disk_change_tracking(self, vm_id: str) -> dict[str, bool]:
        return self._backups.disk_change_tracking(vm_id)

    def create_snapshot(self, vm_id: str, name: str, description: str = "") -> str:
        return self._backups.create_snapshot(vm_id, name, description)

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        self._backups.remove_snapshot(vm_id, snapshot_id)

    def snapshots(self, vm_id: str) -> dict[str, str]:
        return self._backups.snapshots(vm_id)

    def change_ids(self, vm_id: str, snapshot_id: str) -> dict[str, str]:
        return self._backups.change_ids(vm_id, snapshot_id)

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]:
        return self._backups.changed_extents(vm_id, snapshot_id, disk_key, change_id)

    def release(self, vm_id: str) -> None:
        """The checkpoints a warm migration made go once it is over (backup.py)."""
        self._backups.release(vm_id)

    def close(self) -> None:
        self._login.close()


def _id(obj: Any) -> str:
    return obj.id


def _properties(props: Any) -> list[dict[str, str]]:
    return [{"name": p.name or "", "value": p.value or ""} for p in props or ()]


def _filter_name(profile: Any) -> str:
    f = profile.network_filter
    return (f.name or f.id or "") if f is not None else ""


def _guest_name(vm: Any) -> str:
    g = vm.guest_operating_system
    if g is None:
        return ""
    return " ".join(x for x in (g.distribution, g.family) if x) or ""


def _cpu_affinity(vm: Any) -> list[dict[str, Any]]:
    tune = vm.cpu.cpu_tune if vm.cpu is not None else None
    pins = tune.vcpu_pins if tune is not None else None
    return [{"set": p.cpu_set or "", "cpu": int(p.vcpu or 0)} for p in pins or ()]


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """Provider ``spec.type: ovirt``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's oVirt rules, in ``rules/ovirt/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.ovirt", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Cold and warm migration (incremental backups, backup.py); the guests already run on
    KVM, so no conversion."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(warm=True, inflight_per_host=False, guest_conversion=False)


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """The MTV oVirt Secret has the shared keys only (user, password, url, cacert ...)."""
    return [] if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_requirements(provider_type: str) -> Requirements | None:
    """ovirtsdk4, from ``pip install 'mtv-gitops[ovirt]'``."""
    return REQUIREMENTS if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_connect(
    provider_type: str, url: str, secret: dict[str, str], settings: dict[str, Any]
) -> OvirtConnection | None:
    """Log in to the engine at ``url`` with the Provider's secret (see session.py)."""
    if provider_type != PROVIDER_TYPE:
        return None
    missing = REQUIREMENTS.problem(PROVIDER_TYPE)
    if missing:
        raise SourceError(missing)
    trust = session.Trust(secret)
    try:
        conn = session.connect(url, secret, trust)
    except BaseException:
        trust.close()
        raise
    return OvirtConnection(session.Login(url, secret, trust, conn), settings)
