"""A small oVirt engine for the tests: TLS on 127.0.0.1 (a CA made here), the SSO token, and the
``/ovirt-engine/api`` paths the oVirt plugin and ``ovirt-img`` use.

Every XML document it sends is written by ovirtsdk4's own ``types`` and ``writer.Writer.write``
and every one it receives is read by ``reader.Reader.read``, never written or parsed by hand:
ovirtsdk4 reads leniently (an unknown element is ignored, a wrong enum value becomes None), so
hand-written XML would drift without any test failing.

It keeps state the plugin has to wait on: a VM's power (``shutdown`` -> powering_down -> down,
``start`` -> powering_up -> up, one step each time the VM is read), image transfers
(initializing -> transferring -> finalizing_success -> finished_success, or cancelled ->
finished_failure, one step per read) and disk locks. When a transfer reaches ``transferring``
it adds a ticket for the disk's qemu-nbd export to the real ovirt-imageio daemon; finishing
removes it. It refuses what a real engine refuses: a second transfer of a locked disk, a
download of a disk whose VM runs (but through a backup), a token it did not issue.

Incremental backup (``/vms/{id}/backups``, ``/vms/{id}/checkpoints``): a backup copies each
image aside when it starts (the point-in-time view its transfers read; vdsm uses a scratch
disk and the running qemu) and adds its checkpoint as a persistent dirty bitmap on each live
qcow2 image (``qemu-img bitmap --add``), which the guest's writes (:meth:`TestEngine.guest_write`,
through qemu-io) really mark. A transfer with ``backup`` gets a ticket with ``dirty: true`` on
``qemu-nbd --bitmap <from_checkpoint_id>`` of that view, so the real daemon answers
``extents?context=dirty``. Phases initializing -> starting -> ready, finalize -> finalizing ->
succeeded, one step per read; one active backup per VM; only the root checkpoint can be
removed (its bitmaps go with it). Older bitmaps keep tracking (libvirt disables them and merges
the chain instead; the dirty areas since a checkpoint are the same). The fault texts are close
to, not copied from, a real engine's.
"""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from testpeers.ovirt.imageio import ImageioDaemon, NbdExport, imageio_venv
from testpeers.pki import Pki, make_pki

API = "/ovirt-engine/api"
USER, PASSWORD = "admin@internal", "engine-secret"


def _t():  # ovirtsdk4 lazily: the module imports without the ovirt extra
    from ovirtsdk4 import types

    return types


def write(obj: Any, root: str | None = None) -> bytes:
    from ovirtsdk4.writer import Writer

    return Writer.write(obj, root=root).encode() if root else Writer.write(obj).encode()


def read(body: bytes) -> Any:
    from ovirtsdk4.reader import Reader

    return Reader.read(body)


def _id() -> str:
    return str(uuid.uuid4())


def _link(cls: Any, collection: str, id: str) -> Any:
    obj = cls(id=id)
    obj.href = f"{API}/{collection}/{id}"  # what follow_link (ovirt-img) follows
    return obj


@dataclass
class EngineDisk:
    """One disk: its ovirtsdk4 record and the image served behind it."""

    disk: Any
    image: Path
    fmt: str  # qcow2 | raw (the image file's format; the ticket serves it raw)
    export: NbdExport | None = None


@dataclass
class EngineVm:
    vm: Any
    attachments: list[Any] = field(default_factory=list)
    nics: list[Any] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)
    watchdogs: list[Any] = field(default_factory=list)
    host_devices: list[Any] = field(default_factory=list)
    numa_nodes: list[Any] = field(default_factory=list)
    acpi: bool = True  # the guest answers an ACPI shutdown
    backups: list[Any] = field(default_factory=list)
    checkpoints: list[Any] = field(default_factory=list)  # root first, as the chain grows


class Fault(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class TestEngine:
    """The engine's state and its HTTPS server (``start``/``stop``)."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, pki: Pki, daemon: ImageioDaemon) -> None:
        t = _t()
        self.folder, self.pki, self.daemon = folder, pki, daemon
        self.lock = threading.RLock()
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) seen, for the tests
        self.events: list[Any] = []
        self.transfers: dict[str, Any] = {}
        self.tickets: dict[str, str] = {}  # transfer id -> imageio ticket
        self.disks: dict[str, EngineDisk] = {}
        self.vms: dict[str, EngineVm] = {}
        # a backup's point-in-time view of each disk, its export, and the transfers reading it
        self.backup_images: dict[tuple[str, str], Path] = {}
        self.backup_exports: dict[tuple[str, str], NbdExport] = {}
        self.transfer_backups: dict[str, str] = {}  # transfer id -> backup id
        self.transfer_created: dict[str, float] = {}  # transfer id -> time.monotonic()
        self.dc = t.DataCenter(id=_id(), name="Default", local=False)
        self.cluster = t.Cluster(
            id=_id(),
            name="Default",
            data_center=_link(t.DataCenter, "datacenters", self.dc.id),
            bios_type=t.BiosType.Q35_OVMF,
            ha_reservation=False,
            ksm=t.Ksm(enabled=False),
            cpu=t.Cpu(type="Intel Nehalem Family"),
        )
        self.host = t.Host(
            id=_id(),
            name="host1",
            address="127.0.0.1",
            status=t.HostStatus.UP,
            cluster=_link(t.Cluster, "clusters", self.cluster.id),
        )
        self.storage_domains = {
            sd.id: sd
            for sd in (
                t.StorageDomain(
                    id=_id(),
                    name=name,
                    type=t.StorageDomainType.DATA,
                    storage=t.HostStorage(type=kind),
                    available=100 << 30,
                    data_centers=[_link(t.DataCenter, "datacenters", self.dc.id)],
                )
                for name, kind in (("data1", t.StorageType.NFS), ("data2", t.StorageType.ISCSI))
            )
        }
        self.networks = {
            n.id: n
            for n in (
                t.Network(
                    id=_id(),
                    name=name,
                    data_center=_link(t.DataCenter, "datacenters", self.dc.id),
                    vlan=t.Vlan(id=vlan) if vlan else None,
                )
                for name, vlan in (("ovirtmgmt", 0), ("vlan10", 10))
            )
        }
        by_name = {n.name: n.id for n in self.networks.values()}
        self.profiles = {
            p.id: p
            for p in (
                t.VnicProfile(
                    id=_id(),
                    name=name,
                    network=_link(t.Network, "networks", by_name[net]),
                    pass_through=t.VnicPassThrough(mode=t.VnicPassThroughMode.DISABLED),
                    port_mirroring=False,
                )
                for name, net in (
                    ("ovirtmgmt", "ovirtmgmt"),
                    ("vlan10", "vlan10"),
                    ("vlan10-qos", "vlan10"),
                )
            )
        }
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    # -- building the world --------------------------------------------------------------

    def storage_domain(self, name: str) -> Any:
        return next(sd for sd in self.storage_domains.values() if sd.name == name)

    def profile(self, name: str) -> Any:
        return next(p for p in self.profiles.values() if p.name == name)

    def network(self, name: str) -> Any:
        return next(n for n in self.networks.values() if n.name == name)

    def add_vm(
        self,
        name: str,
        disks: list[tuple[Path, str, str, str]],
        nics: list[tuple[str, str, str]],
        *,
        status: str = "down",
        sockets: int = 1,
        cores: int = 2,
        memory_mib: int = 2048,
        bios: str = "q35_ovmf",
        os_type: str = "rhel_9x64",
        acpi: bool = True,
        incremental: bool = False,
    ) -> str:
        """A VM with ``disks`` as (image, format qcow2|raw, storage domain name, interface)
        and ``nics`` as (name, MAC, vNIC profile name); returns its id. ``incremental``:
        its qcow2 disks have incremental backup on (``disk.backup``), as a warm migration
        needs (a raw disk cannot have it, as on a real engine)."""
        t = _t()
        vm_id = _id()
        vm = t.Vm(
            id=vm_id,
            name=name,
            status=t.VmStatus(status),
            cpu=t.Cpu(topology=t.CpuTopology(sockets=sockets, cores=cores, threads=1)),
            memory=memory_mib << 20,
            bios=t.Bios(type=t.BiosType(bios), boot_menu=t.BootMenu(enabled=False)),
            os=t.OperatingSystem(type=os_type),
            cluster=_link(t.Cluster, "clusters", self.cluster.id),
            host=_link(t.Host, "hosts", self.host.id) if status == "up" else None,
            usb=t.Usb(enabled=False),
            high_availability=t.HighAvailability(enabled=False),
            placement_policy=t.VmPlacementPolicy(affinity=t.VmAffinity.MIGRATABLE),
            cpu_shares=0,
            io=t.Io(threads=1),
            memory_policy=t.MemoryPolicy(ballooning=False),
            display=t.Display(type=t.DisplayType.VNC),
            storage_error_resume_behaviour=t.VmStorageErrorResumeBehaviour.AUTO_RESUME,
            has_illegal_images=False,
            tpm_enabled=False,
            cpu_pinning_policy=t.CpuPinningPolicy.NONE,
            guest_operating_system=t.GuestOperatingSystem(family="Linux"),
        )
        entry = EngineVm(vm, acpi=acpi)
        for i, (image, fmt, sd_name, interface) in enumerate(disks):
            size = int(
                json.loads(
                    subprocess.run(
                        ["qemu-img", "info", "--output=json", "-f", fmt, str(image)],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )["virtual-size"]
            )
            sd = self.storage_domain(sd_name)
            disk = t.Disk(
                id=_id(),
                name=f"{name}_Disk{i + 1}",
                alias=f"{name}_Disk{i + 1}",
                provisioned_size=size,
                actual_size=image.stat().st_blocks * 512,
                format=t.DiskFormat.COW if fmt == "qcow2" else t.DiskFormat.RAW,
                sparse=fmt == "qcow2",
                status=t.DiskStatus.OK,
                storage_type=t.DiskStorageType.IMAGE,
                content_type=t.DiskContentType.DATA,
                backup=(
                    t.DiskBackup.INCREMENTAL
                    if incremental and fmt == "qcow2"
                    else t.DiskBackup.NONE
                ),
                shareable=False,
                storage_domains=[_link(t.StorageDomain, "storagedomains", sd.id)],
            )
            self.disks[disk.id] = EngineDisk(disk, image, fmt)
            entry.attachments.append(
                t.DiskAttachment(
                    id=disk.id,
                    disk=_link(t.Disk, "disks", disk.id),
                    interface=t.DiskInterface(interface),
                    bootable=i == 0,
                    active=True,
                    uses_scsi_reservation=False,
                    vm=_link(t.Vm, "vms", vm_id),
                )
            )
        for nic_name, mac, profile in nics:
            entry.nics.append(
                t.Nic(
                    id=_id(),
                    name=nic_name,
                    mac=t.Mac(address=mac),
                    interface=t.NicInterface.VIRTIO,
                    plugged=True,
                    linked=True,
                    vnic_profile=_link(t.VnicProfile, "vnicprofiles", self.profile(profile).id),
                    vm=_link(t.Vm, "vms", vm_id),
                )
            )
        entry.snapshots.append(
            t.Snapshot(
                id=_id(),
                description="Active VM",
                snapshot_type=t.SnapshotType.ACTIVE,
                snapshot_status=t.SnapshotStatus.OK,
                persist_memorystate=False,
                vm=_link(t.Vm, "vms", vm_id),
            )
        )
        with self.lock:
            self.vms[vm_id] = entry
            self._event(30, f"VM {name} was created", vm_id)
        return vm_id

    def _event(self, code: int, text: str, vm_id: str = "") -> None:
        t = _t()
        self.events.append(
            t.Event(
                id=str(len(self.events) + 1),
                code=code,
                description=text,
                severity=t.LogSeverity.NORMAL,
                time=datetime.datetime.now(datetime.UTC),
                vm=_link(t.Vm, "vms", vm_id) if vm_id else None,
            )
        )

    def set_status(self, vm_id: str, status: str) -> None:
        """Change a VM's power from outside (as a user in the admin portal would)."""
        t = _t()
        with self.lock:
            entry = self.vms[vm_id]
            entry.vm.status = t.VmStatus(status)
            entry.vm.host = _link(t.Host, "hosts", self.host.id) if status == "up" else None
            self._event(61, f"VM {entry.vm.name} is {status}", vm_id)

    def guest_write(self, disk_id: str, offset: int, data: bytes) -> None:
        """The running guest writes to its disk: through qemu-io for a qcow2 image, so the
        image's persistent dirty bitmaps (the VM's checkpoints) record the write."""
        with self.lock:
            d = self._find_disk(disk_id)
            with self._live(d):
                if d.fmt == "raw":
                    with open(d.image, "r+b") as f:
                        f.seek(offset)
                        f.write(data)
                    return
                staging = self.folder / "guest-write.staging"
                staging.write_bytes(data)
                subprocess.run(
                    [
                        "qemu-io",
                        "-f",
                        "qcow2",
                        "-c",
                        f"write -s {staging} {offset} {len(data)}",
                        str(d.image),
                    ],
                    check=True,
                    capture_output=True,
                )
                staging.unlink()

    @contextmanager
    def _live(self, d: EngineDisk) -> Iterator[None]:
        """The live image, free of the read-only export a finished transfer left running
        (qemu's image locks would refuse a write); an open transfer of the disk refuses."""
        t = _t()
        if d.disk.status == t.DiskStatus.LOCKED:
            raise Fault(
                409,
                "Operation Failed",
                f"[Cannot backup VM. Disk {d.disk.alias} is locked. Please try again later.]",
            )
        if d.export is not None:
            d.export.stop()
            d.export = None
        yield

    def checkpoint_bitmaps(self, disk_id: str) -> list[str]:
        """The persistent bitmaps of the disk's image, read by qemu-img (the checks of the
        tests: a removed checkpoint leaves no bitmap behind)."""
        with self.lock:
            d = self._find_disk(disk_id)
            with self._live(d):
                info = json.loads(
                    subprocess.run(
                        ["qemu-img", "info", "--output=json", "-f", d.fmt, str(d.image)],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
        bitmaps = (info.get("format-specific", {}).get("data", {}) or {}).get("bitmaps", [])
        return [b["name"] for b in bitmaps]

    def open_transfers(self) -> list[Any]:
        with self.lock:
            return [
                x for x in self.transfers.values() if not str(x.phase.value).startswith("finished")
            ]

    # -- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{API}"

    def secret(self, **overrides: str) -> dict[str, str]:
        """The Provider Secret as MTV's docs show it for oVirt."""
        return {"user": USER, "password": PASSWORD, "cacert": self.pki.ca_pem, **overrides}

    def start(self) -> TestEngine:
        engine = self

        class Handler(_Handler):
            pass

        Handler.engine = engine
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.cert, self.pki.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for d in self.disks.values():
            if d.export is not None:
                d.export.stop()
                d.export = None
        for export in self.backup_exports.values():
            export.stop()
        self.backup_exports.clear()

    # -- the API ------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("username") != USER or form.get("password") != PASSWORD:
            return 400, {
                "error": "access_denied",
                "error_description": "Cannot authenticate user 'admin@internal': "
                "The username or password is incorrect.",
            }
        token = _id()
        with self.lock:
            self.tokens.add(token)
        return 200, {"access_token": token, "scope": "ovirt-app-api", "token_type": "bearer"}

    def get(self, path: str, query: dict[str, str]) -> bytes:
        t = _t()
        parts = [p for p in path.split("/") if p]
        with self.lock:
            match parts:
                case []:
                    return write(
                        t.Api(
                            product_info=t.ProductInfo(
                                name="oVirt Engine (mtv-gitops test)",
                                version=t.Version(major=4, minor=5, build=0, revision=0),
                            )
                        )
                    )
                case ["vms"]:
                    return write([self._vm(v) for v in self.vms.values()], "vms")
                case ["vms", vm_id]:
                    return write(self._vm(self._find_vm(vm_id)))
                case ["vms", vm_id, "diskattachments"]:
                    return write(self._find_vm(vm_id).attachments, "disk_attachments")
                case ["vms", vm_id, "nics"]:
                    return write(self._find_vm(vm_id).nics, "nics")
                case ["vms", vm_id, "snapshots"]:
                    return write(self._find_vm(vm_id).snapshots, "snapshots")
                case ["vms", vm_id, "backups"]:
                    entry = self._find_vm(vm_id)
                    return write([self._advance_backup(b) for b in entry.backups], "backups")
                case ["vms", vm_id, "backups", backup_id]:
                    entry = self._find_vm(vm_id)
                    return write(self._advance_backup(self._find_backup(entry, backup_id)))
                case ["vms", vm_id, "backups", backup_id, "disks"]:
                    backup = self._find_backup(self._find_vm(vm_id), backup_id)
                    return write([self.disks[d.id].disk for d in backup.disks], "disks")
                case ["vms", vm_id, "checkpoints"]:
                    return write(self._find_vm(vm_id).checkpoints, "checkpoints")
                case ["vms", vm_id, "checkpoints", checkpoint_id]:
                    return write(self._find_checkpoint(self._find_vm(vm_id), checkpoint_id))
                case ["vms", vm_id, "watchdogs"]:
                    return write(self._find_vm(vm_id).watchdogs, "watchdogs")
                case ["vms", vm_id, "numanodes"]:
                    return write(self._find_vm(vm_id).numa_nodes, "vm_numa_nodes")
                case ["vms", vm_id, "hostdevices"]:
                    return write(self._find_vm(vm_id).host_devices, "host_devices")
                case ["disks"]:
                    return write([d.disk for d in self.disks.values()], "disks")
                case ["disks", disk_id]:
                    return write(self._find_disk(disk_id).disk)
                case ["vnicprofiles"]:
                    return write(list(self.profiles.values()), "vnic_profiles")
                case ["networks"]:
                    return write(list(self.networks.values()), "networks")
                case ["storagedomains"]:
                    return write(list(self.storage_domains.values()), "storage_domains")
                case ["storagedomains", sd_id]:
                    if sd_id not in self.storage_domains:
                        raise Fault(404, "Not Found", f"no storage domain {sd_id}")
                    return write(self.storage_domains[sd_id])
                case ["clusters"]:
                    return write([self.cluster], "clusters")
                case ["hosts"]:
                    return write([self.host], "hosts")
                case ["hosts", host_id] if host_id == self.host.id:
                    return write(self.host)
                case ["datacenters"]:
                    return write([self.dc], "data_centers")
                case ["events"]:
                    since = int(query.get("from", "0") or 0)
                    newer = list(reversed([e for e in self.events if int(e.id) > since]))
                    if query.get("max"):
                        newer = newer[: int(query["max"])]
                    return write(newer, "events")  # newest first, as the engine lists them
                case ["imagetransfers"]:
                    return write(
                        [self._advance(x) for x in self.transfers.values()], "image_transfers"
                    )
                case ["imagetransfers", transfer_id]:
                    if transfer_id not in self.transfers:
                        raise Fault(404, "Not Found", f"no image transfer {transfer_id}")
                    return write(self._advance(self.transfers[transfer_id]))
        raise Fault(404, "Not Found", f"no such path {path}")

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        t = _t()
        parts = [p for p in path.split("/") if p]
        with self.lock:
            match parts:
                case ["vms", vm_id, ("shutdown" | "stop" | "start") as action]:
                    self._power(self._find_vm(vm_id), action)
                    return 200, write(t.Action(status="complete"))
                case ["imagetransfers"]:
                    return 201, write(self._create_transfer(read(body)))
                case ["vms", vm_id, "backups"]:
                    return 201, write(self._create_backup(self._find_vm(vm_id), read(body)))
                case ["vms", vm_id, "backups", backup_id, "finalize"]:
                    self._finalize_backup(self._find_backup(self._find_vm(vm_id), backup_id))
                    return 200, write(t.Action(status="complete"))
                case ["imagetransfers", transfer_id, ("finalize" | "cancel") as action]:
                    x = self.transfers.get(transfer_id)
                    if x is None:
                        raise Fault(404, "Not Found", f"no image transfer {transfer_id}")
                    if not str(x.phase.value).startswith("finished"):
                        x.phase = (
                            t.ImageTransferPhase.FINALIZING_SUCCESS
                            if action == "finalize"
                            else t.ImageTransferPhase.CANCELLED_USER
                        )
                    return 200, write(t.Action(status="complete"))
        raise Fault(404, "Not Found", f"no such path {path}")

    def delete(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        with self.lock:
            match parts:
                case ["vms", vm_id, "checkpoints", checkpoint_id]:
                    self._remove_checkpoint(self._find_vm(vm_id), checkpoint_id)
                    return
        raise Fault(404, "Not Found", f"no such path {path}")

    # -- incremental backup ----------------------------------------------------------------

    def _find_backup(self, entry: EngineVm, backup_id: str) -> Any:
        for b in entry.backups:
            if b.id == backup_id:
                return b
        raise Fault(404, "Not Found", f"no backup {backup_id} of VM {entry.vm.name}")

    def _find_checkpoint(self, entry: EngineVm, checkpoint_id: str) -> Any:
        for c in entry.checkpoints:
            if c.id == checkpoint_id:
                return c
        raise Fault(404, "Not Found", f"no checkpoint {checkpoint_id} of VM {entry.vm.name}")

    def _create_backup(self, entry: EngineVm, req: Any) -> Any:
        """A backup of the given disks as they are now (each image copied aside: the
        point-in-time view its transfers read), incremental from ``from_checkpoint_id`` when
        given; its new checkpoint is a new persistent bitmap on each live image. One active
        backup per VM, as on a real engine."""
        t = _t()
        name = entry.vm.name
        if any(
            b.phase not in (t.BackupPhase.SUCCEEDED, t.BackupPhase.FAILED) for b in entry.backups
        ):
            raise Fault(
                409,
                "Operation Failed",
                f"[Cannot backup VM. VM {name} is during a backup operation.]",
            )
        attached = {a.disk.id for a in entry.attachments}
        disk_ids = [d.id for d in req.disks or () if d.id]
        if not disk_ids or not set(disk_ids) <= attached:
            raise Fault(400, "Bad Request", f"[Cannot backup VM. Invalid disks for VM {name}.]")
        frm = req.from_checkpoint_id or None
        if frm is not None:
            self._find_checkpoint(entry, frm)
            off = [
                self.disks[i].disk.alias
                for i in disk_ids
                if self.disks[i].disk.backup != t.DiskBackup.INCREMENTAL
            ]
            if off:
                raise Fault(
                    409,
                    "Operation Failed",
                    "[Cannot backup VM. Incremental backup is not enabled for disk(s) "
                    f"{', '.join(off)}.]",
                )
        incremental = [i for i in disk_ids if self.disks[i].disk.backup == t.DiskBackup.INCREMENTAL]
        to = _id() if incremental else None
        backup_id = _id()
        folder = self.folder / "backups"
        folder.mkdir(exist_ok=True)
        for i in disk_ids:
            d = self.disks[i]
            with self._live(d):
                copy = folder / f"b{len(self.backup_images)}.{d.fmt}"  # short: socket paths
                subprocess.run(["cp", "--sparse=always", str(d.image), str(copy)], check=True)
                self.backup_images[(backup_id, i)] = copy
                if to is not None and i in incremental:
                    subprocess.run(
                        ["qemu-img", "bitmap", "--add", "-f", "qcow2", str(d.image), to],
                        check=True,
                        capture_output=True,
                    )
        now = datetime.datetime.now(datetime.UTC)
        if to is not None:
            entry.checkpoints.append(
                t.Checkpoint(
                    id=to,
                    parent_id=entry.checkpoints[-1].id if entry.checkpoints else None,
                    creation_date=now,
                    state=t.CheckpointState.CREATED,
                    vm=_link(t.Vm, "vms", entry.vm.id),
                    disks=[_link(t.Disk, "disks", i) for i in incremental],
                )
            )
        backup = t.Backup(
            id=backup_id,
            description=req.description,
            phase=t.BackupPhase.INITIALIZING,
            from_checkpoint_id=frm,
            to_checkpoint_id=to,
            creation_date=now,
            modification_date=now,
            disks=[_link(t.Disk, "disks", i) for i in disk_ids],
            host=_link(t.Host, "hosts", self.host.id),
            vm=_link(t.Vm, "vms", entry.vm.id),
        )
        entry.backups.append(backup)
        self._event(10790, f"Backup of VM {name} was initiated", entry.vm.id)
        return backup

    def _advance_backup(self, b: Any) -> Any:
        """One step of a backup's phases per read: initializing -> starting -> ready, and
        finalizing -> succeeded (its views and exports are removed then)."""
        t = _t()
        step = {
            t.BackupPhase.INITIALIZING: t.BackupPhase.STARTING,
            t.BackupPhase.STARTING: t.BackupPhase.READY,
            t.BackupPhase.FINALIZING: t.BackupPhase.SUCCEEDED,
        }
        if b.phase in step:
            b.phase = step[b.phase]
            b.modification_date = datetime.datetime.now(datetime.UTC)
            if b.phase == t.BackupPhase.SUCCEEDED:
                for key in [k for k in self.backup_images if k[0] == b.id]:
                    export = self.backup_exports.pop(key, None)
                    if export is not None:
                        export.stop()
                    self.backup_images.pop(key).unlink(missing_ok=True)
                self._event(10792, f"Backup {b.id} of VM {b.vm.id} completed", b.vm.id)
        return b

    def _finalize_backup(self, b: Any) -> None:
        t = _t()
        if b.phase != t.BackupPhase.READY:
            raise Fault(
                409,
                "Operation Failed",
                f"[Cannot stop VM backup. The VM backup is not in READY phase (it is "
                f"{b.phase.value}).]",
            )
        b.phase = t.BackupPhase.FINALIZING

    def _remove_checkpoint(self, entry: EngineVm, checkpoint_id: str) -> None:
        """Only the root checkpoint can go (the chain stays whole); its bitmaps go with it."""
        t = _t()
        c = self._find_checkpoint(entry, checkpoint_id)
        if entry.checkpoints[0].id != c.id:
            raise Fault(
                409,
                "Operation Failed",
                "[Cannot remove VM checkpoint. Only the root checkpoint can be removed.]",
            )
        if any(
            b.from_checkpoint_id == c.id
            and b.phase not in (t.BackupPhase.SUCCEEDED, t.BackupPhase.FAILED)
            for b in entry.backups
        ):
            raise Fault(
                409,
                "Operation Failed",
                f"[Cannot remove VM checkpoint. VM {entry.vm.name} is during a backup operation.]",
            )
        for link in c.disks or ():
            d = self.disks[link.id]
            with self._live(d):
                subprocess.run(
                    ["qemu-img", "bitmap", "--remove", "-f", "qcow2", str(d.image), c.id],
                    check=True,
                    capture_output=True,
                )
        entry.checkpoints.pop(0)
        if entry.checkpoints:
            entry.checkpoints[0].parent_id = None

    def _find_vm(self, vm_id: str) -> EngineVm:
        if vm_id not in self.vms:
            raise Fault(404, "Not Found", f"no VM {vm_id}")
        return self.vms[vm_id]

    def _find_disk(self, disk_id: str) -> EngineDisk:
        if disk_id not in self.disks:
            raise Fault(404, "Not Found", f"no disk {disk_id}")
        return self.disks[disk_id]

    def _vm(self, entry: EngineVm) -> Any:
        """The VM as read now: a power change under way goes one step further."""
        t = _t()
        vm = entry.vm
        step = {
            t.VmStatus.POWERING_DOWN: t.VmStatus.DOWN,
            t.VmStatus.WAIT_FOR_LAUNCH: t.VmStatus.POWERING_UP,
            t.VmStatus.POWERING_UP: t.VmStatus.UP,
        }
        if vm.status in step:
            vm.status = step[vm.status]
            vm.host = _link(t.Host, "hosts", self.host.id) if vm.status != t.VmStatus.DOWN else None
            if vm.status in (t.VmStatus.DOWN, t.VmStatus.UP):
                self._event(
                    33 if vm.status == t.VmStatus.DOWN else 32,
                    f"VM {vm.name} is {vm.status.value}",
                    vm.id,
                )
        return vm

    def _power(self, entry: EngineVm, action: str) -> None:
        t = _t()
        vm = entry.vm
        if action == "start":
            if vm.status == t.VmStatus.DOWN:
                vm.status = t.VmStatus.WAIT_FOR_LAUNCH
            return
        if vm.status in (t.VmStatus.DOWN,):
            return
        if action == "stop" or entry.acpi:
            vm.status = t.VmStatus.POWERING_DOWN

    def _create_transfer(self, req: Any) -> Any:
        t = _t()
        if req.disk is None or not req.disk.id:
            raise Fault(400, "Bad Request", "an image transfer needs a disk")
        d = self._find_disk(req.disk.id)
        if req.direction not in (None, t.ImageTransferDirection.DOWNLOAD):
            raise Fault(400, "Operation Failed", "this test engine serves downloads only")
        backup = None
        if req.backup is not None and req.backup.id:
            backup = next(
                (b for e in self.vms.values() for b in e.backups if b.id == req.backup.id), None
            )
            if backup is None:
                raise Fault(404, "Not Found", f"no backup {req.backup.id}")
            if backup.phase != t.BackupPhase.READY:
                raise Fault(
                    409,
                    "Operation Failed",
                    "[Cannot transfer Virtual Disk: The VM backup is not in READY phase.]",
                )
            if d.disk.id not in {x.id for x in backup.disks}:
                raise Fault(
                    400,
                    "Operation Failed",
                    f"[Cannot transfer Virtual Disk: disk {d.disk.alias} is not in the backup.]",
                )
        if d.disk.status == t.DiskStatus.LOCKED:
            raise Fault(
                409,
                "Operation Failed",
                "[Cannot transfer Virtual Disk: Disk is locked. Please try again later.]",
            )
        for entry in self.vms.values():
            if (
                backup is None
                and any(a.id == d.disk.id for a in entry.attachments)
                and entry.vm.status not in (t.VmStatus.DOWN,)
            ):
                raise Fault(
                    409, "Operation Failed", "[Cannot transfer Virtual Disk: The VM is running.]"
                )
        d.disk.status = t.DiskStatus.LOCKED
        x = t.ImageTransfer(
            id=_id(),
            direction=t.ImageTransferDirection.DOWNLOAD,
            format=req.format or t.DiskFormat.COW,
            phase=t.ImageTransferPhase.INITIALIZING,
            disk=_link(t.Disk, "disks", d.disk.id),
            host=_link(t.Host, "hosts", self.host.id),
            inactivity_timeout=req.inactivity_timeout or 60,
            timeout_policy=t.ImageTransferTimeoutPolicy.CANCEL,
            transferred=0,
            active=False,
            backup=t.Backup(id=backup.id) if backup is not None else None,
        )
        self.transfers[x.id] = x
        self.transfer_created[x.id] = time.monotonic()
        if backup is not None:
            self.transfer_backups[x.id] = backup.id
        self._event(1031, f"Image Download with disk {d.disk.alias} was initiated")
        return x

    def cancel_idle_transfers(self, skew: float = 0.0) -> list[str]:
        """The engine's monitor, run before every API request: a transfer whose client has
        been idle longer than its ``inactivity_timeout`` (the daemon's ticket says how long) is
        cancelled by the system and its disk unlocked, as a download's timeout policy (legacy
        or cancel) does; this is what frees a disk whose client was killed mid-transfer.  A
        test passes ``skew`` (added to every idle time) to move past the plugin's 600 s now."""
        t = _t()
        gone = []
        with self.lock:
            for x in list(self.transfers.values()):
                if not x.inactivity_timeout:
                    continue
                if x.phase == t.ImageTransferPhase.INITIALIZING:  # its client never polled
                    idle = time.monotonic() - self.transfer_created.get(x.id, time.monotonic())
                elif x.phase == t.ImageTransferPhase.TRANSFERRING:
                    ticket = self.tickets.get(x.id, "")
                    try:
                        info = self.daemon.tickets(ticket) if ticket else None
                    except OSError:  # the host's daemon is down: nothing to judge by
                        continue
                    if info is None or info.get("connections"):
                        continue
                    idle = info.get("idle_time", 0)
                else:
                    continue
                if idle + skew <= x.inactivity_timeout:
                    continue
                x.phase = t.ImageTransferPhase.CANCELLED_SYSTEM
                self._advance(x)
                gone.append(x.id)
        return gone

    def _advance(self, x: Any) -> Any:
        """One step of a transfer's phases, as the engine's polling moves them."""
        t = _t()
        d = self.disks[x.disk.id]
        if x.phase == t.ImageTransferPhase.INITIALIZING:
            size = d.disk.provisioned_size
            backup_id = self.transfer_backups.get(x.id, "")
            if backup_id:
                url, dirty = self._backup_export(backup_id, d)
            else:
                if d.export is None:
                    d.export = NbdExport(d.image, self.folder, d.fmt)
                url, dirty = d.export.url, False
            ticket = self.daemon.add_ticket(
                url, size, transfer_id=x.id, filename=f"{d.disk.alias}.raw", dirty=dirty
            )
            self.tickets[x.id] = ticket
            x.transfer_url = self.daemon.url(ticket)
            x.proxy_url = f"https://localhost:{self.daemon.port}/images/{ticket}"
            x.phase = t.ImageTransferPhase.TRANSFERRING
            x.active = True
        elif x.phase in (
            t.ImageTransferPhase.FINALIZING_SUCCESS,
            t.ImageTransferPhase.CANCELLED_USER,
            t.ImageTransferPhase.CANCELLED_SYSTEM,
        ):
            ticket = self.tickets.pop(x.id, "")
            if ticket:
                try:
                    self.daemon.del_ticket(ticket)
                except OSError:
                    pass  # the daemon is down: its tickets went with it
            ok = x.phase == t.ImageTransferPhase.FINALIZING_SUCCESS
            x.phase = (
                t.ImageTransferPhase.FINISHED_SUCCESS
                if ok
                else t.ImageTransferPhase.FINISHED_FAILURE
            )
            x.active = False
            d.disk.status = t.DiskStatus.OK
            self._event(1032 if ok else 1033, f"Image Download with disk {d.disk.alias} ended")
        return x

    def _backup_export(self, backup_id: str, d: EngineDisk) -> tuple[str, bool]:
        """The backup's view of the disk, exported with the dirty bitmap of its
        ``from_checkpoint_id`` when it is incremental (the ticket then serves dirty extents,
        as vdsm's backup exports do)."""
        t = _t()
        backup = next(b for e in self.vms.values() for b in e.backups if b.id == backup_id)
        key = (backup_id, d.disk.id)
        bitmap = ""
        if backup.from_checkpoint_id and d.disk.backup == t.DiskBackup.INCREMENTAL:
            bitmap = backup.from_checkpoint_id
        export = self.backup_exports.get(key)
        if export is None:
            image = self.backup_images[key]
            export = NbdExport(image, image.parent, d.fmt, bitmap=bitmap)
            self.backup_exports[key] = export
        return export.url, bool(bitmap)


class _Handler(http.server.BaseHTTPRequestHandler):
    engine: TestEngine
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        ok = auth.startswith("Bearer ") and auth[7:] in self.engine.tokens
        if not ok:
            self._send(401, write(_t().Fault(reason="Unauthorized", detail="no valid token")))
        return ok

    def _api(self, method: str) -> None:
        u = urlparse(self.path)
        self.engine.requests.append((method, u.path))
        if not u.path.startswith(API):
            self._send(404, b"")
            return
        if not self._authorized():
            return
        self.engine.cancel_idle_transfers()
        query = {k: v[-1] for k, v in parse_qs(u.query).items()}
        try:
            if method == "GET":
                self._send(200, self.engine.get(u.path[len(API) :], query))
            elif method == "DELETE":
                self._body()
                self.engine.delete(u.path[len(API) :])
                self._send(200, b"")
            else:
                status, body = self.engine.post(u.path[len(API) :], self._body())
                self._send(status, body)
        except Fault as f:
            self._send(f.status, write(_t().Fault(reason=f.reason, detail=f.detail)))

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._api("GET")

    def do_DELETE(self) -> None:  # noqa: N802
        self._api("DELETE")

    def do_POST(self) -> None:  # noqa: N802
        u = urlparse(self.path)
        if u.path == "/ovirt-engine/sso/oauth/token":
            self.engine.requests.append(("POST", u.path))
            form = {k: v[-1] for k, v in parse_qs(self._body().decode()).items()}
            status, doc = self.engine.token(form)
            self._send(status, json.dumps(doc).encode(), "application/json")
            return
        if u.path == "/ovirt-engine/services/sso-logout":
            self._body()
            self._send(200, b"{}", "application/json")
            return
        self._api("POST")


# -- the whole peer --------------------------------------------------------------------------


@dataclass
class OvirtPeer:
    """The test engine, the imageio daemon behind it and the CA that signed both."""

    engine: TestEngine
    daemon: ImageioDaemon
    pki: Pki
    folder: Path

    def stop(self) -> None:
        self.engine.stop()
        self.daemon.stop()

    def ovirt_img_download(self, disk_id: str, out: Path) -> None:
        """``ovirt-img download-disk -f raw`` (ovirt-imageio's own client, what Forklift's oVirt
        populator runs) from this engine: the outside check of our copies."""
        pw = self.folder / "ovirt-img-password"
        pw.write_text(PASSWORD)
        venv = imageio_venv()
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "from ovirt_imageio.client import _tool; _tool.main()",
                "download-disk",
                "--engine-url",
                f"https://127.0.0.1:{self.engine.port}",
                "--username",
                USER,
                "--password-file",
                str(pw),
                "--cafile",
                str(self.pki.ca_cert),
                "-f",
                "raw",
                "--output",
                "json",
                disk_id,
                str(out),
            ],
            check=True,
            capture_output=True,
            text=True,
        )


def start_peer(folder: Path) -> OvirtPeer:
    """A CA, the imageio daemon with a certificate it signed, and the engine (no VMs yet)."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = make_pki(folder / "pki")
    daemon = ImageioDaemon(folder, pki)
    daemon.start()
    engine = TestEngine(folder, pki, daemon).start()
    return OvirtPeer(engine, daemon, pki, folder)


def qcow2_with_holes(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    """A qcow2 image of ``size`` bytes holding ``writes`` (offset, data) and holes elsewhere."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)], check=True)
    raw = path.with_suffix(".staging")
    for offset, data in writes:
        raw.write_bytes(data)
        subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"write -s {raw} {offset} {len(data)}", str(path)],
            check=True,
            capture_output=True,
        )
    raw.unlink(missing_ok=True)
    return path


def raw_image(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    """A sparse raw image of ``size`` bytes holding ``writes``."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in writes:
            f.seek(offset)
            f.write(data)
    return path


def logical(image: Path, fmt: str, out: Path) -> bytes:
    """The image's guest-visible bytes, by qemu-img (not by the plugin)."""
    subprocess.run(
        ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(image), str(out)], check=True
    )
    return out.read_bytes()
