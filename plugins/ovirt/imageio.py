"""A disk read through an oVirt image transfer: ``POST /imagetransfers`` for the disk, wait
for ``transferring``, then the imageio daemon's HTTP API at the transfer URL: ``GET
/extents`` (data and zero extents, so holes stay holes) and ``GET`` with ``Range`` for the
bytes; ``finalize`` when every read succeeded, ``cancel`` when one failed, so no transfer is
left open and no disk left locked.

The transfer is made on first use, not when the reader is opened: the pipeline opens every
disk of a running VM to check it can (a real engine refuses a download of a running VM's
disk). A transfer of the same disk left open by a reconciler that was killed is found before
a new one is made and finalized (a download has nothing to roll back).

The daemon is spoken to with the standard library only (ovirt-imageio is GPL and is not
imported): its protocol is HTTP with ranges, documented by the project.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

from plugins.ovirt.session import Login
from reconciler.sources import SourceError
from reconciler.transfer.extents import Extent

log = logging.getLogger(__name__)
PHASE_TIMEOUT = 300.0  # seconds for a transfer to become ready or to finish
POLL = 0.2  # seconds between two reads of a transfer's phase
_FINISHED = ("finished_success", "finished_failure", "finished_cleanup", "cancelled")


def _phase(x: Any) -> str:
    return str(getattr(x.phase, "value", x.phase) or "")


def close_transfer(service: Any, phase: str, what: str, timeout: float = PHASE_TIMEOUT) -> str:
    """Finalize (a download) or cancel (one still initializing) a transfer and wait until the
    engine says it finished; returns its last phase."""
    import ovirtsdk4 as sdk

    try:
        if phase == "initializing":
            service.cancel()
        elif phase not in _FINISHED and not phase.startswith(("finalizing", "cancelled")):
            service.finalize()
        deadline = time.monotonic() + timeout
        while True:
            phase = _phase(service.get())
            if phase.startswith("finished") or phase in ("cancelled",):
                return phase
            if time.monotonic() > deadline:
                raise SourceError(f"{what} did not finish in {timeout:.0f}s (still {phase})")
            time.sleep(POLL)
    except sdk.NotFoundError:
        return "finished"  # engines before 4.4.7 remove a finished transfer at once


def leftover_transfers(login: Login, disk_id: str) -> list[Any]:
    """Transfers of ``disk_id`` still open (a killed reconciler's)."""
    with login.lock:
        transfers = login.system().image_transfers_service().list()
    return [
        x
        for x in transfers or ()
        if x.disk is not None and x.disk.id == disk_id and not _phase(x).startswith("finished")
    ]


class TransferDisk:
    """A :class:`reconciler.transfer.extents.DiskReader` over one image transfer."""

    def __init__(
        self,
        login: Login,
        disk_id: str,
        size: int,
        name: str,
        *,
        proxy: bool = False,
        retry_seconds: float = 30.0,
        snapshot_id: str = "",
        backup_id: str = "",
        on_transfer: Callable[[str], None] | None = None,
    ) -> None:
        self.login, self.disk_id, self.size, self.name = login, disk_id, size, name
        self.proxy, self.retry_seconds = proxy, retry_seconds
        self.snapshot_id = snapshot_id
        self.backup_id = backup_id  # read the disk as this incremental backup holds it
        self.on_transfer = on_transfer
        self.transfer_id = ""
        self._url = ""
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[http.client.HTTPSConnection] = []
        self._failed = False
        self._closed = False

    # -- the transfer ----------------------------------------------------------------------

    def _service(self) -> Any:
        return (
            self.login.system().image_transfers_service().image_transfer_service(self.transfer_id)
        )

    def _start(self) -> str:
        with self._lock:
            if self._closed:
                raise SourceError(f"the reader of disk {self.name} is closed")
            if self._url:
                return self._url
            import ovirtsdk4 as sdk
            from ovirtsdk4 import types

            for x in leftover_transfers(self.login, self.disk_id):
                log.warning("finishing image transfer %s of disk %s left open", x.id, self.name)
                service = self.login.system().image_transfers_service().image_transfer_service(x.id)
                with self.login.lock:
                    close_transfer(service, _phase(x), f"the transfer {x.id} left open")
            request = types.ImageTransfer(
                direction=types.ImageTransferDirection.DOWNLOAD,
                format=types.DiskFormat.RAW,  # the guest-visible bytes, whatever the volume
                inactivity_timeout=600,
                timeout_policy=types.ImageTransferTimeoutPolicy.CANCEL,
            )
            if self.snapshot_id:
                request.snapshot = types.DiskSnapshot(id=self.snapshot_id)
            else:
                request.disk = types.Disk(id=self.disk_id)
            if self.backup_id:
                request.backup = types.Backup(id=self.backup_id)
            try:
                with self.login.lock:
                    x = self.login.system().image_transfers_service().add(request)
            except sdk.Error as exc:
                raise SourceError(
                    f"the oVirt engine refused a download of disk {self.name}: {_fault(exc)}"
                ) from exc
            self.transfer_id = x.id
            if self.on_transfer is not None:
                self.on_transfer(x.id)
            deadline = time.monotonic() + PHASE_TIMEOUT
            while True:
                phase = _phase(x)
                if phase == "transferring":
                    break
                if phase != "initializing" or time.monotonic() > deadline:
                    self._failed = True
                    self._finish()
                    raise SourceError(
                        f"the download of disk {self.name} (image transfer {x.id}) did not "
                        f"start: it is {phase}"
                    )
                time.sleep(POLL)
                with self.login.lock:
                    x = self._service().get()
            url = x.proxy_url if self.proxy else x.transfer_url
            if not url:
                self._failed = True
                self._finish()
                where = "proxy_url" if self.proxy else "transfer_url"
                raise SourceError(f"the image transfer {x.id} of disk {self.name} has no {where}")
            self._url = url
            return url

    def _finish(self) -> None:
        """Finalize after reads that all succeeded, cancel after one that failed."""
        if not self.transfer_id:
            return
        try:
            with self.login.lock:
                service = self._service()
                phase = "transferring"
                if self._failed:
                    service.cancel()
                    phase = "cancelled_user"
                close_transfer(service, phase, f"the image transfer of disk {self.name}")
        except Exception as exc:  # noqa: BLE001 - the next open finds it and finishes it
            log.warning(
                "image transfer %s of disk %s not closed: %s", self.transfer_id, self.name, exc
            )
        self.transfer_id = ""

    # -- the daemon ------------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            u = urlparse(self._start())
            conn = http.client.HTTPSConnection(
                u.hostname or "", u.port or 443, context=self.login.trust.context, timeout=60
            )
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _get(self, suffix: str, headers: dict[str, str]) -> bytes:
        """One GET to the daemon, again on a new connection while the daemon is away for up
        to ``retry_seconds``; a ticket the daemon no longer has fails at once (its restart
        lost it: the next pass makes a new transfer and resumes from the checkpoints)."""
        deadline = time.monotonic() + self.retry_seconds
        path = urlparse(self._start()).path + suffix
        while True:
            try:
                conn = self._conn()
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop_conn()
                if time.monotonic() > deadline:
                    self._failed = True
                    raise SourceError(
                        f"reading disk {self.name} from the imageio daemon failed: {exc}"
                    ) from exc
                time.sleep(POLL)
                continue
            if resp.status in (200, 206):
                return body
            self._failed = True
            raise SourceError(
                f"the imageio daemon answered {resp.status} reading disk {self.name} "
                f"(image transfer {self.transfer_id}): {body[:200].decode(errors='replace')}"
            )

    def extents(self) -> Iterator[Extent]:
        """The daemon's zero extents (``qemu:allocation-depth`` and ``base:allocation``
        behind it), merged where neighbours agree."""
        doc = json.loads(self._get("/extents?context=zero", {}))
        out: list[Extent] = []
        for e in doc:
            start, length, zero = int(e["start"]), int(e["length"]), bool(e["zero"])
            if out and out[-1].zero == zero and out[-1].end == start:
                out[-1] = Extent(out[-1].start, out[-1].length + length, zero)
            else:
                out.append(Extent(start, length, zero))
        yield from out

    def dirty_extents(self) -> list[Extent]:
        """The areas an incremental backup's transfer reports written since the backup's
        ``from_checkpoint_id`` (the daemon's ``extents?context=dirty``), merged where
        neighbours touch; ``zero`` is False: they are areas to copy."""
        doc = json.loads(self._get("/extents?context=dirty", {}))
        out: list[Extent] = []
        for e in doc:
            if not e.get("dirty"):
                continue
            start, length = int(e["start"]), int(e["length"])
            if out and out[-1].end == start:
                out[-1] = Extent(out[-1].start, out[-1].length + length, False)
            else:
                out.append(Extent(start, length, False))
        return out

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        if length == 0:
            return b""
        data = self._get("", {"Range": f"bytes={offset}-{offset + length - 1}"})
        if len(data) != length:
            self._failed = True
            raise SourceError(
                f"the imageio daemon sent {len(data)} bytes of disk {self.name} at {offset}, "
                f"not {length}"
            )
        return data

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._finish()


def _fault(exc: Exception) -> str:
    fault = getattr(exc, "fault", None)
    if fault is not None and (fault.detail or fault.reason):
        return str(fault.detail or fault.reason).strip("[]")
    return str(exc)
