"""Read a VMDK that sits inside an OVA tar, without extracting it.

qemu opens the tar member in place: a ``raw`` driver with ``offset``/``size`` carves the member
out of the OVA file and the ``vmdk`` driver decodes it (streamOptimized and monolithicSparse).
``qemu-img`` answers size and allocation; a few ``qemu-nbd`` processes serve the logical
content, and :class:`VmdkReader` reads it over a small pool of NBD connections spread over
them, so several transfer streams read (and decompress) at once.
Nothing is ever written next to the OVA.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.sources import SourceError
from reconciler.transfer import children
from reconciler.transfer.extents import Extent
from reconciler.transfer.nbd import NbdClient, NbdError

QEMU_IMG = "qemu-img"
QEMU_NBD = "qemu-nbd"
EXPORT_NAME = "disk"
START_TIMEOUT = 30.0
NBD_FOLDER_PREFIX = "mtv-ova-nbd-"

_swept = threading.Lock()
_sweep_done = False


def _sweep_once() -> None:
    """Before this process's first qemu-nbd: remove what killed predecessors left behind."""
    global _sweep_done
    with _swept:
        if not _sweep_done:
            children.sweep(NBD_FOLDER_PREFIX)
            _sweep_done = True


def image_spec(
    ova_path: str | Path,
    member_offset: int,
    member_size: int,
    fmt: str = "vmdk",
    file_node: dict[str, Any] | None = None,
) -> str:
    """The qemu ``json:`` filename that opens one tar member of an OVA as a disk image.

    ``file_node`` is the qemu block node that reads the OVA's bytes (default: the local file
    ``ova_path``; an NFS share's comes from :meth:`plugins.ova.share.Folder.qemu_file`)."""
    spec: dict[str, Any] = {
        "driver": fmt,
        "file": {
            "driver": "raw",
            "offset": member_offset,
            "size": member_size,
            "file": file_node or {"driver": "file", "filename": str(ova_path)},
        },
    }
    return "json:" + json.dumps(spec, separators=(",", ":"))


def merge_extents(entries: list[dict[str, Any]], size: int) -> list[Extent]:
    """Turn ``qemu-img map --output=json`` entries into ordered, merged extents over ``[0, size)``.

    An entry that reads as zeros and has no data (``zero`` and not ``data``) is a zero extent;
    anything else must be copied.  Gaps (which qemu does not produce) are treated as data so
    nothing is ever skipped by mistake.
    """
    out: list[Extent] = []
    pos = 0

    def add(start: int, length: int, zero: bool) -> None:
        if length <= 0:
            return
        if out and out[-1].zero == zero and out[-1].end == start:
            last = out.pop()
            out.append(Extent(last.start, last.length + length, zero))
        else:
            out.append(Extent(start, length, zero))

    for entry in sorted(entries, key=lambda e: int(e["start"])):
        start = max(int(entry["start"]), pos)
        end = min(int(entry["start"]) + int(entry["length"]), size)
        if start > pos:
            add(pos, start - pos, False)
        if end > start:
            add(start, end - start, bool(entry.get("zero")) and not entry.get("data", True))
            pos = end
    if pos < size:
        add(pos, size - pos, False)
    return out


class _Server:
    """One qemu-nbd process: its socket, its log and its own pool of connections."""

    def __init__(self, index: int, cap: int) -> None:
        self.index = index
        self.cap = cap  # at most this many connections (qemu-nbd runs with --shared=cap)
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock = ""
        self.log = ""
        self.clients: list[NbdClient] = []
        self.idle: list[NbdClient] = []
        self.busy = 0  # connections lent out right now

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()
        self.idle.clear()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class _Servers:
    """The qemu-nbd processes and their private socket folder.

    Kept apart from the reader so a finalizer can clean up after a reader that was never
    closed, without holding a reference to it.
    """

    def __init__(self, caps: list[int]) -> None:
        self.tmpdir: str | None = None
        self.servers = [_Server(i, cap) for i, cap in enumerate(caps)]

    @property
    def clients(self) -> list[NbdClient]:
        return [c for s in self.servers for c in s.clients]

    def stop(self) -> None:
        # Ask every process to quit first, then wait: they wind down in parallel.
        for server in self.servers:
            for client in server.clients:
                client.close()
            if server.proc is not None and server.proc.poll() is None:
                server.proc.terminate()
        for server in self.servers:
            server.stop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


def default_servers(streams: int) -> int:
    """How many qemu-nbd processes serve ``streams`` connections by default.

    qemu-nbd decodes a compressed VMDK in its single main-loop thread, so one process caps
    the read rate at about one core; a process per core (up to 4) lets the streams decode
    in parallel.
    """
    return max(1, min(streams, os.cpu_count() or 1, 4))


class VmdkReader:
    """A :class:`~reconciler.transfer.extents.DiskReader` over a disk image inside an OVA.

    ``read`` is thread-safe and parallel: each call borrows one of at most ``streams`` NBD
    connections.  The connections are spread over ``servers`` qemu-nbd processes that all
    serve the same read-only image (default :func:`default_servers`); each process keeps its
    own pool and a read borrows from the least-busy one.  A pool is used rather than one
    connection per thread so that more reader threads than streams wait instead of hanging in
    a handshake the server will not accept, and connections do not leak with dead threads.
    qemu-nbd starts on the first read, so asking only for ``size`` or ``extents`` is cheap.
    Measured on 2 cores: one qemu-nbd reads a streamOptimized disk at 450-560 MiB/s whatever
    the number of streams (qemu inflates grains in its one main-loop thread); with two
    processes the benchmark's 400 MiB-of-data copy takes a median 1.5-1.8 s (best 1.2 s)
    instead of 2.0-2.1 s (best 1.8 s).
    """

    def __init__(
        self,
        ova_path: str | Path,
        member_offset: int,
        member_size: int,
        streams: int = 4,
        *,
        member_name: str = "",
        fmt: str = "vmdk",
        verify: bool = True,
        servers: int | None = None,
        file_node: dict[str, Any] | None = None,
    ) -> None:
        if streams < 1:
            raise ValueError("streams must be at least 1")
        if servers is None:
            servers = default_servers(streams)
        if servers < 1:
            raise ValueError("servers must be at least 1")
        servers = min(servers, streams)  # a process without a connection would idle
        self.ova_path = Path(ova_path)
        self.member_name = member_name or f"member at offset {member_offset}"
        self.streams = streams
        self.servers = servers
        self.spec = image_spec(self.ova_path, member_offset, member_size, fmt, file_node)
        self._extents: list[Extent] | None = None
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        caps = [streams // servers + (1 if i < streams % servers else 0) for i in range(servers)]
        self._group = _Servers(caps)
        self._started = False
        self._closed = False
        self._finalizer = weakref.finalize(self, self._group.stop)
        info = self._qemu_img("info", "--output=json", self.spec)
        self.size: int = int(info["virtual-size"])
        self.format: str = str(info.get("format", fmt))
        if verify:
            self._check()

    # -- qemu-img --------------------------------------------------------------------

    def _fail(self, message: str) -> SourceError:
        return SourceError(f"{self.ova_path}: cannot read disk {self.member_name}: {message}")

    def _check(self) -> None:
        """``qemu-img check``: finds a truncated VMDK from its metadata alone, in milliseconds.

        Without it a truncated streamOptimized disk opens and maps fine and only fails
        mid-copy with a bare EINVAL.  Exit 3 means leaked clusters only, harmless for reading.
        """
        try:
            proc = subprocess.run(
                [QEMU_IMG, "check", "--output=json", self.spec],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise self._fail(f"qemu-img check did not run: {e}") from e
        if proc.returncode in (0, 3):
            return
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        message = "; ".join(dict.fromkeys(lines[:3] + lines[-1:])) or proc.stdout.strip()
        raise self._fail(
            f"the image is damaged or truncated: {message.replace(self.spec, '<image>')}"
        )

    def _qemu_img(self, *args: str) -> Any:
        try:
            proc = subprocess.run(
                [QEMU_IMG, *args], capture_output=True, text=True, check=False, timeout=600
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise self._fail(f"qemu-img did not run: {e}") from e
        if proc.returncode != 0:
            message = proc.stderr.strip() or f"qemu-img exited with {proc.returncode}"
            raise self._fail(message.replace(self.spec, "<image>"))
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise self._fail(f"unexpected qemu-img output: {e}") from e

    def extents(self) -> Iterator[Extent]:
        """Data and zero extents over ``[0, size)``, from ``qemu-img map`` (computed once)."""
        if self._extents is None:
            entries = self._qemu_img("map", "--output=json", self.spec)
            self._extents = merge_extents(entries, self.size)
        return iter(self._extents)

    # -- qemu-nbd --------------------------------------------------------------------

    def _start_locked(self) -> None:
        """Launch every qemu-nbd, then wait until each one answers a handshake."""
        group = self._group
        _sweep_once()
        group.tmpdir = children.private_folder(NBD_FOLDER_PREFIX)
        for server in group.servers:
            server.sock = os.path.join(group.tmpdir, f"nbd{server.index}.sock")
            server.log = os.path.join(group.tmpdir, f"qemu-nbd{server.index}.log")
            cmd = [
                QEMU_NBD,
                "--read-only",
                # no --persistent: qemu-nbd exits when its last client goes, so a reconciler
                # killed with -9 leaves no server behind (the pool holds one connection open
                # per server for the reader's whole life)
                f"--shared={server.cap}",
                f"--socket={server.sock}",
                "-x",
                EXPORT_NAME,
                self.spec,
            ]
            with open(server.log, "wb") as log:
                try:
                    server.proc = children.spawn(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                except OSError as e:
                    raise self._fail(f"qemu-nbd did not start: {e}") from e
        deadline = time.monotonic() + START_TIMEOUT
        for server in group.servers:
            self._await_listening(server, deadline)
        self._started = True

    def _await_listening(self, server: _Server, deadline: float) -> None:
        assert server.proc is not None
        while True:
            if server.proc.poll() is not None:
                message = Path(server.log).read_text(errors="replace").strip()
                raise self._fail(
                    message.replace(self.spec, "<image>")
                    or f"qemu-nbd exited with {server.proc.returncode}"
                )
            if os.path.exists(server.sock):
                try:
                    client = NbdClient(server.sock, EXPORT_NAME)
                except NbdError:
                    pass
                else:
                    server.clients.append(client)
                    server.idle.append(client)
                    return
            if time.monotonic() > deadline:
                raise self._fail(f"qemu-nbd did not listen within {START_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def _borrow(self) -> tuple[_Server, NbdClient]:
        """A connection of the least-busy qemu-nbd: an idle one, else a new one while that
        process has fewer than its share of ``streams``; if all are lent out, wait."""
        with self._freed:
            while True:
                if self._closed:
                    raise self._fail("reader is closed")
                if not self._started:
                    try:
                        self._start_locked()
                    except BaseException:
                        self._group.stop()
                        raise
                server = min(self._group.servers, key=lambda s: s.busy)
                if server.busy < server.cap:
                    if server.idle:
                        client = server.idle.pop()
                    else:
                        try:
                            client = NbdClient(server.sock, EXPORT_NAME)
                        except NbdError as e:
                            raise self._fail(str(e)) from e
                        server.clients.append(client)
                    server.busy += 1
                    return server, client
                self._freed.wait(0.5)

    # -- DiskReader ------------------------------------------------------------------

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset``; returns how many bytes (short only at end of disk)."""
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - offset))
        if n == 0:
            return 0
        if self._closed:
            raise self._fail("reader is closed")
        server, client = self._borrow()
        try:
            client.readinto(offset, view[:n])
        except NbdError as e:
            raise self._fail(
                f"reading {n} bytes at offset {offset} failed ({e}); an EINVAL or EIO here means "
                "the VMDK's data is damaged at that offset (e.g. a corrupt compressed grain): "
                "export or copy the OVA again"
            ) from e
        finally:
            self._give_back(server, client)
        return n

    def _give_back(self, server: _Server, client: NbdClient) -> None:
        """Return a connection to its pool, or drop it if it broke (a new one replaces it)."""
        with self._freed:
            server.busy -= 1
            if not client.closed and client in server.clients:
                server.idle.append(client)
            elif client in server.clients:
                server.clients.remove(client)
            self._freed.notify()

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset`` (short only at end of disk); thread-safe."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        buf = bytearray(max(0, min(length, self.size - offset)))
        self.readinto(offset, buf)
        return bytes(buf)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Disconnect, stop every qemu-nbd and remove the socket folder; safe to call twice."""
        with self._lock:
            self._closed = True
            self._group.stop()
            self._finalizer.detach()
            self._freed.notify_all()

    def __enter__(self) -> VmdkReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VmdkReader({str(self.ova_path)!r}, {self.member_name!r}, size={self.size})"


def open_member(
    ova_path: str | Path,
    member_offset: int,
    member_size: int,
    streams: int = 4,
    *,
    member_name: str = "",
    file_node: dict[str, Any] | None = None,
    file: Any = None,
) -> Any:
    """The fastest reader for a disk inside an OVA: a hosted sparse VMDK (streamOptimized,
    monolithicSparse) is decoded in process (:class:`plugins.ova.sparse.SparseVmdkReader`),
    read through ``file`` (the OVA opened in its folder, local or on an NFS share: one decoder,
    two backends; it is the reader's from then on); anything else is read through qemu
    (:class:`VmdkReader`; ``file_node``: the qemu block node that reads the OVA there)."""
    from plugins.ova.sparse import NotSparse, SparseVmdkReader

    try:
        return SparseVmdkReader(
            ova_path, member_offset, member_size, member_name=member_name, file=file
        )
    except NotSparse:
        pass
    return VmdkReader(
        ova_path, member_offset, member_size, streams, member_name=member_name, file_node=file_node
    )
