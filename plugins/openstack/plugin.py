"""The OpenStack source plugin (openstacksdk): Cinder-backed servers, as in MTV.

Connection and credentials: :mod:`plugins.openstack.session`. Inventory: servers (flavor ->
CPU and memory), their volumes (Cinder) and ports (Neutron), read in bulk and refreshed with
Nova's ``changes-since``: :mod:`plugins.openstack.inventory`. A disk is read as Forklift reads
it: a snapshot of the volume (forced for an attached one), a volume from that snapshot, that
volume uploaded to an image (``os-volume_upload_image``), the image read from Glance with Range
requests (:mod:`plugins.openstack.glance`). Those temporaries have names that say whose they are
(:mod:`plugins.openstack.temporaries`), so a killed pass finds and reuses them. The reconciler
makes them before the copy (``prepare``, :func:`reconciler.sources.prepare_disks`) and deletes
them once the VM's disks are copied or the VM fails or is canceled (``release``); a reader,
in process or in a kubevirt transfer Job, only finds the image, so a Job that outlives its VM
leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from plugins import bundled
from plugins.openstack import session
from plugins.openstack.glance import RETRY_SECONDS, GlanceFile, Qcow2Image, RawImage, tls_context
from plugins.openstack.inventory import InventoryCache, Snapshot, validation_doc
from plugins.openstack.temporaries import Temporaries
from reconciler.hookspecs import hookimpl
from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.sources import Capabilities, Requirements, Rules, SourceError
from reconciler.transfer.extents import DiskReader, Extent

PROVIDER_TYPE = "openstack"
REQUIREMENTS = Requirements(extra="openstack", modules=("openstack",))
GiB = 1024**3
_POWER = {"ACTIVE": "On", "SHUTOFF": "Off", "SHELVED_OFFLOADED": "Off", "SHELVED": "Off"}
# the keys of an MTV OpenStack Provider Secret (Forklift's pkg/lib/client/openstack)
SECRET_KEYS = [
    "authType",
    "username",
    "userID",
    "domainName",
    "projectName",
    "projectID",
    "regionName",
    "applicationCredentialID",
    "applicationCredentialName",
    "applicationCredentialSecret",
]


def booted_from_image(server: dict) -> bool:
    """A volume-booted server has ``"image": ""``; an image-booted one names its image."""
    image = server.get("image")
    return bool(image and isinstance(image, dict) and image.get("id"))


class OpenStackConnection:
    """A Keystone session and the inventory read through it."""

    def __init__(
        self, conn: Any, creds: session.Credentials, settings: dict[str, Any] | None = None
    ) -> None:
        settings = settings or {}
        self.conn, self.creds = conn, creds
        self.retry_seconds = float(settings.get("readRetrySeconds", RETRY_SECONDS))
        self.image_format = str(settings.get("imageFormat", "qcow2"))
        self.wait_seconds = float(settings.get("waitSeconds", 1800))
        self._cache = InventoryCache(conn)
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()
        self._temporaries = Temporaries(conn, self.image_format, self.wait_seconds)

    # -- inventory ----------------------------------------------------------------------

    def _snapshot(self) -> Snapshot:
        with self._lock:
            if self._snap is None:
                self._snap = self._read()
            return self._snap

    def _read(self) -> Snapshot:
        try:
            return self._cache.refresh()
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the cloud's state: a condition, not a crash
            raise SourceError(
                f"reading the inventory of OpenStack ({self.creds.auth_url}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _server(self, vm_id: str) -> dict:
        server = self._snapshot().servers.get(vm_id)
        if server is None:
            raise SourceError(f"OpenStack has no server {vm_id} in the Provider's project")
        return server

    def inventory(self) -> Inventory:
        """Everything the project has now: the first call reads it all, later calls only the
        servers Nova reports changed since (``changes-since``), volumes and ports again."""
        with self._lock:
            snap = self._snap = self._read()
        vms = [self._vm(snap, s) for _, s in sorted(snap.servers.items())]
        return Inventory(
            vms=vms,
            networks=[Network(n["id"], n.get("name") or n["id"]) for n in snap.networks.values()],
            storages=[Storage(t["id"], t.get("name") or t["id"]) for t in snap.types.values()],
        )

    def _vm(self, snap: Snapshot, server: dict) -> VM:
        flavor = snap.flavor_of(server)
        disks = tuple(
            Disk(
                v["id"],
                int(v.get("size") or 0) * GiB,
                snap.type_id(v),
                file=v.get("name") or v["id"],
                format="raw",
                bus=_disk_bus(snap.image_properties(server)),
            )
            for v in snap.server_volumes(server)
        )
        nics = tuple(
            Nic(p.get("name") or p["id"], p["network_id"], p.get("mac_address", ""), "virtio")
            for p in snap.server_ports(server)
        )
        concerns: tuple[dict, ...] = ()
        if booted_from_image(server):
            concerns = (
                {
                    "category": "Critical",
                    "label": "Root disk is not a Cinder volume",
                    "assessment": "booted from an image: only servers whose disks are all "
                    "Cinder volumes can be migrated",
                },
            )
        firmware = snap.image_properties(server).get("hw_firmware_type", "")
        return VM(
            server["id"],
            server.get("name") or server["id"],
            cpus=int(flavor.get("vcpus") or 1),
            memory_mb=int(flavor.get("ram") or 1024),
            firmware="efi" if firmware == "uefi" else "bios",
            guest_os=snap.image_properties(server).get("os_distro", ""),
            power_state=_POWER.get(str(server.get("status", "")).upper(), "Unknown"),
            disks=disks,
            nics=nics,
            host="",  # a member user sees no hypervisor host
            concerns=concerns,
        )

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        """The server as Forklift's OpenStack inventory serves it (rules/openstack/INPUT.md)."""
        snap = self._snapshot()
        return validation_doc(snap, self._server(vm_id))

    # -- power ---------------------------------------------------------------------------

    def _fresh(self, vm_id: str) -> Any:
        try:
            return self.conn.compute.get_server(vm_id)
        except Exception as exc:  # noqa: BLE001 - named for the user
            raise SourceError(f"OpenStack server {vm_id}: {exc}") from exc

    def power_state(self, vm_id: str) -> str:
        return _POWER.get(str(self._fresh(vm_id).status or "").upper(), "Unknown")

    def power_off(self, vm_id: str, timeout: float) -> None:
        """Nova's stop (an ACPI shutdown, then off); returns once the server is SHUTOFF."""
        server = self._fresh(vm_id)
        if server.status != "SHUTOFF":
            if server.status == "ACTIVE":
                self.conn.compute.stop_server(server)
            self._wait_status(vm_id, "SHUTOFF", timeout)

    def power_on(self, vm_id: str) -> None:
        server = self._fresh(vm_id)
        if server.status != "ACTIVE":
            if server.status == "SHUTOFF":
                self.conn.compute.start_server(server)
            self._wait_status(vm_id, "ACTIVE", 600)

    def _wait_status(self, vm_id: str, status: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while (got := self._fresh(vm_id).status) != status:
            if got == "ERROR" or time.monotonic() > deadline:
                raise SourceError(f"OpenStack server {vm_id} is {got}, not {status}")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- disks ---------------------------------------------------------------------------

    def prepare(self, vm_id: str) -> None:
        """Make (or find again, after a killed pass) the snapshot, volume and image of every
        volume of the server, the server being off: the reconciler does it before any copy,
        so a transfer Job only reads; :meth:`release` deletes them."""
        for volume in self._snapshot().server_volumes(self._server(vm_id)):
            self._retried(lambda v=volume: self._temporaries.ensure_image(vm_id, v))

    def _retried(self, call: Any) -> Any:
        """``call`` again while the cloud cannot be reached or answers 5xx (Glance or Cinder
        restarting), with backoff for up to ``readRetrySeconds``; ``ensure_image`` finds what
        an earlier try made, so trying again is safe."""
        from keystoneauth1.exceptions import ConnectFailure
        from openstack.exceptions import HttpException

        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                return call()
            except (ConnectFailure, HttpException) as exc:
                server_side = not isinstance(exc, HttpException) or (exc.status_code or 0) >= 500
                if not server_side or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def open_disk(self, vm_id: str, disk_key: str) -> DiskReader:
        """A reader of one volume through the image :meth:`prepare` made, found on the first
        read; it makes nothing itself, so a reader in a transfer Job leaves nothing behind."""
        server = self._server(vm_id)
        volume = next(
            (v for v in self._snapshot().server_volumes(server) if v["id"] == disk_key), None
        )
        if volume is None:
            raise SourceError(f"server {server.get('name')} has no volume {disk_key}")
        return VolumeReader(self, vm_id, volume)

    def glance_reader(self, image: Any, size: int) -> DiskReader:
        endpoint = self.conn.image.get_endpoint()

        def token(fresh: bool) -> str:
            if fresh:
                self.conn.session.invalidate()
            return self.conn.session.get_token()

        f = GlanceFile(
            endpoint, image.id, token, tls_context(self.creds.verify), self.retry_seconds
        )
        if (image.disk_format or "raw") == "qcow2":
            try:
                return Qcow2Image(f, size)
            except BaseException:
                f.close()
                raise
        return RawImage(f, size)

    def release(self, vm_id: str) -> None:
        """Delete every temporary image, volume and snapshot made for the VM's disks."""
        self._temporaries.release(vm_id)

    def temporaries(self, vm_id: str = "") -> list[str]:
        """What is left of temporaries (``kind name``), of one VM or of all."""
        return self._temporaries.leftovers(vm_id)

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            self.creds.close()


class VolumeReader:
    """A volume's logical content, through the Glance image made from a snapshot of it."""

    def __init__(self, source: OpenStackConnection, vm_id: str, volume: dict) -> None:
        self.source, self.vm_id, self.volume = source, vm_id, volume
        self.size = int(volume.get("size") or 0) * GiB
        self._inner: DiskReader | None = None
        self._lock = threading.Lock()

    def _reader(self) -> DiskReader:
        with self._lock:
            if self._inner is None:
                image = self.source._temporaries.find_image(self.vm_id, self.volume)
                self._inner = self.source.glance_reader(image, self.size)
            return self._inner

    def extents(self):  # noqa: ANN201 - Iterator[Extent]
        inner = self._reader()
        for e in inner.extents():
            if e.start >= self.size:
                break
            yield Extent(e.start, min(e.length, self.size - e.start), e.zero)

    def read(self, offset: int, length: int) -> bytes:
        return self._reader().read(offset, length)

    def close(self) -> None:
        with self._lock:
            if self._inner is not None:
                self._inner.close()
                self._inner = None


def _disk_bus(props: dict) -> str:
    bus = str(props.get("hw_disk_bus") or "virtio").lower()
    return bus if bus in ("virtio", "scsi", "sata") else "virtio"


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """Provider ``spec.type: openstack``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's OpenStack rules, in ``rules/openstack/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.openstack", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Cold only, as in MTV; Cinder volumes of a KVM guest need no conversion."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(warm=False, inflight_per_host=False, guest_conversion=False)


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """Keystone's: user or application credentials, domain, project, region (and a token)."""
    return list(SECRET_KEYS) if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_requirements(provider_type: str) -> Requirements | None:
    """openstacksdk, from ``pip install 'mtv-gitops[openstack]'``."""
    return REQUIREMENTS if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_connect(
    provider_type: str, url: str, secret: dict[str, str], settings: dict[str, Any]
) -> OpenStackConnection | None:
    """Log in to Keystone at ``url`` (``https://<identity service>/v3``) with the Secret."""
    if provider_type != PROVIDER_TYPE:
        return None
    missing = REQUIREMENTS.problem(PROVIDER_TYPE)
    if missing:
        raise SourceError(missing)
    conn, creds = session.connect(url, secret)
    return OpenStackConnection(conn, creds, settings)
