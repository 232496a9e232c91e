"""Disk reads from a datastore over HTTPS with Range requests, as virt-v2v's vpx input does.

``GET https://<vcenter>/folder/<path>?dcPath=<datacenter>&dsName=<datastore>`` with the SOAP
session's cookie serves any file of a datastore (an ESXi host serves the same path with
``dcPath=ha-datacenter``). :class:`DatastoreDisk` reads the descriptor, then serves the disk's
logical content through the extents it names (see :mod:`plugins.vsphere.vmdk`).

Every connection is checked against the same TLS policy as the SOAP session (the thumbprint pin
included). A read that fails on the network or with a 5xx is retried with backoff for up to
``retry_seconds`` (a vCenter restarting mid-copy is waited for); a 401/403 logs in again first.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

from plugins.vsphere import vmdk
from plugins.vsphere.session import TlsPolicy, untrusted_message
from reconciler.sources import SourceError
from reconciler.transfer.extents import Extent

log = logging.getLogger(__name__)
RETRY_SECONDS = 120.0
MAX_SPAN = 64 * 1024 * 1024  # grain tables are fetched in requests of at most this much


class NotFound(SourceError):
    """The datastore has no such file."""


@dataclass(frozen=True)
class DatastoreFile:
    """``[dsName] path`` in a datacenter."""

    datacenter: str
    datastore: str
    path: str

    @classmethod
    def parse(cls, datacenter: str, file_name: str) -> DatastoreFile:
        """``[LocalDS_0] vm/disk.vmdk`` as vSphere writes backing file names."""
        if not file_name.startswith("[") or "]" not in file_name:
            raise SourceError(f"disk file {file_name!r} is not a datastore path '[ds] path'")
        ds, _, path = file_name[1:].partition("]")
        return cls(datacenter, ds, path.strip())

    def sibling(self, name: str) -> DatastoreFile:
        """A file named in a descriptor: relative to the descriptor's folder."""
        folder = self.path.rpartition("/")[0]
        return DatastoreFile(
            self.datacenter, self.datastore, f"{folder}/{name}" if folder else name
        )

    def url_path(self) -> str:
        q = f"dcPath={quote(self.datacenter, safe='')}&dsName={quote(self.datastore, safe='')}"
        return f"/folder/{quote(self.path)}?{q}"

    def __str__(self) -> str:
        return f"[{self.datastore}] {self.path}"


class DatastoreHttp:
    """Range GETs on one endpoint, a keep-alive connection per thread, retried with backoff."""

    def __init__(
        self,
        host: str,
        port: int,
        policy: TlsPolicy,
        cookie: Callable[[], str],
        relogin: Callable[[], None] = lambda: None,
        retry_seconds: float = RETRY_SECONDS,
        timeout: float = 60.0,
    ) -> None:
        self.host, self.port, self.policy = host, port, policy
        self.cookie, self.relogin = cookie, relogin
        self.retry_seconds, self.timeout = retry_seconds, timeout
        self._local = threading.local()
        self._conns: list[http.client.HTTPSConnection] = []
        self._lock = threading.Lock()
        self.bytes_read = 0  # payload bytes, for tests and benchmarks
        self.retries = 0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.policy.context
            )
            conn.connect()
            self.policy.check(conn.sock.getpeercert(binary_form=True), self.where)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def get(self, f: DatastoreFile, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``start`` of a datastore file (fewer only at its end)."""
        deadline = time.monotonic() + self.retry_seconds
        delay, attempts = 0.5, 0
        while True:
            attempts += 1
            try:
                return self._get_once(f, start, length)
            except NotFound:
                raise
            except _Auth:
                self._drop()
                try:
                    self.relogin()
                except SourceError as exc:
                    last: Exception = exc
                else:
                    continue
            except ssl.SSLCertVerificationError as exc:
                raise SourceError(untrusted_message(self.where, exc)) from exc
            except (OSError, http.client.HTTPException, _Retry) as exc:
                self._drop()
                last = exc
            if time.monotonic() + delay > deadline:
                raise SourceError(
                    f"reading {f} from {self.where} failed {attempts} times over "
                    f"{self.retry_seconds:.0f}s (last: {last}); the copy resumes from its last "
                    "checkpoint once the datastore answers again"
                ) from last
            self.retries += 1
            log.warning("datastore read of %s failed (%s); retrying in %.1fs", f, last, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _get_once(self, f: DatastoreFile, start: int, length: int) -> bytes:
        conn = self._conn()
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Cookie": self.cookie()}
        conn.request("GET", f.url_path(), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 404:
            raise NotFound(f"{f} not found on {self.where} (dcPath {f.datacenter})")
        if resp.status in (401, 403):
            raise _Auth(f"HTTP {resp.status}")
        if resp.status == 416:
            return b""  # the range starts at or past the end of the file
        if resp.status >= 500:
            raise _Retry(f"HTTP {resp.status} {resp.reason}")
        if resp.status == 200:  # a server that ignores Range sends the whole file
            body = body[start : start + length]
        elif resp.status != 206:
            raise SourceError(f"reading {f} from {self.where}: HTTP {resp.status} {resp.reason}")
        with self._lock:
            self.bytes_read += len(body)
        return body

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


class _Auth(Exception):
    pass


class _Retry(SourceError):
    pass


@dataclass
class _Part:
    """One descriptor extent placed at ``start`` on the disk."""

    start: int
    length: int
    kind: str  # FLAT, ZERO, SPARSE
    file: DatastoreFile | None = None
    file_offset: int = 0
    grains: list[int] | None = None  # SPARSE: sector of each grain (0/1: none/zero)
    grain_bytes: int = 0


class DatastoreDisk:
    """The logical content of a VMDK on a datastore (a :class:`DiskReader`)."""

    def __init__(self, client: DatastoreHttp, descriptor: DatastoreFile, capacity: int) -> None:
        self.client = client
        self.descriptor = descriptor
        self.parts = _layout(client, descriptor)
        layout_size = sum(p.length for p in self.parts)
        if layout_size > capacity:
            raise SourceError(
                f"{descriptor}: its extents hold {layout_size} bytes, more than the disk's "
                f"capacity of {capacity} bytes in the VM's configuration"
            )
        if layout_size < capacity:  # the rest of the disk reads as zeros
            self.parts.append(_Part(layout_size, capacity - layout_size, "ZERO"))
        self.size = capacity
        self._starts = [p.start for p in self.parts]

    def extents(self) -> Iterator[Extent]:
        pending: Extent | None = None
        for ext in self._raw_extents():
            if pending and pending.zero == ext.zero and pending.end == ext.start:
                pending = Extent(pending.start, pending.length + ext.length, ext.zero)
                continue
            if pending:
                yield pending
            pending = ext
        if pending:
            yield pending

    def _raw_extents(self) -> Iterator[Extent]:
        for p in self.parts:
            if p.kind != "SPARSE":
                yield Extent(p.start, p.length, p.kind == "ZERO")
                continue
            for i, sector in enumerate(p.grains or []):
                off = i * p.grain_bytes
                if off >= p.length:
                    break
                yield Extent(p.start + off, min(p.grain_bytes, p.length - off), sector <= 1)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        first = self.parts[bisect_right(self._starts, offset) - 1]
        if offset + length <= first.start + first.length:  # the usual case: no copy to join
            return self._read_part(first, offset - first.start, length)
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            p = self.parts[bisect_right(self._starts, pos) - 1]
            n = min(end, p.start + p.length) - pos
            out += self._read_part(p, pos - p.start, n)
            pos += n
        return bytes(out)

    def _read_part(self, p: _Part, rel: int, n: int) -> bytes:
        if p.kind == "ZERO":
            return bytes(n)
        if p.kind == "FLAT":
            return _exact(self.client.get(p.file, p.file_offset + rel, n), n, p.file, rel)
        out = bytearray()
        for file_off, run in _grain_runs(p, rel, n):
            if file_off is None:
                out += bytes(run)
            else:
                out += _exact(self.client.get(p.file, file_off, run), run, p.file, file_off)
        return bytes(out)

    def close(self) -> None:
        self.client.close()


def _exact(data: bytes, n: int, f: DatastoreFile | None, at: int) -> bytes:
    if len(data) != n:
        raise SourceError(f"{f} is shorter than its descriptor says (wanted {n} bytes at {at})")
    return data


def _grain_runs(p: _Part, rel: int, n: int) -> Iterator[tuple[int | None, int]]:
    """(file offset or None for zeros, length) runs, merging grains adjacent in the file."""
    g = p.grain_bytes
    run_off: int | None = None
    run_len = 0
    pos, end = rel, rel + n
    while pos < end:
        idx, within = divmod(pos, g)
        take = min(g - within, end - pos)
        sector = p.grains[idx] if p.grains and idx < len(p.grains) else 0
        off = None if sector <= 1 else sector * vmdk.SECTOR + within
        if run_len and (
            (off is None and run_off is None)
            or (off is not None and run_off is not None and run_off + run_len == off)
        ):
            run_len += take
        else:
            if run_len:
                yield run_off, run_len
            run_off, run_len = off, take
        pos += take
    if run_len:
        yield run_off, run_len


def _layout(client: DatastoreHttp, descriptor: DatastoreFile) -> list[_Part]:
    head = client.get(descriptor, 0, vmdk.DESCRIPTOR_MAX)
    if not head:
        raise SourceError(f"{descriptor} is empty: not a VMDK descriptor")
    if head.startswith(vmdk.SPARSE_MAGIC):  # monolithicSparse: the descriptor is embedded
        header = vmdk.parse_sparse_header(head, str(descriptor))
        return [_sparse(client, descriptor, header, 0, header.capacity * vmdk.SECTOR)]
    if head.startswith(b"COWD"):
        raise SourceError(
            f"{descriptor}: an ESXi snapshot delta (vmfsSparse): delete or consolidate the VM's "
            "snapshots, then push a new Migration"
        )
    if not vmdk.looks_like_descriptor(head):
        raise SourceError(f"{descriptor}: not a VMDK descriptor")
    try:
        desc = vmdk.parse_descriptor(head.decode("utf-8", "replace"), str(descriptor))
    except vmdk.VmdkError as exc:
        raise SourceError(str(exc)) from exc
    parts: list[_Part] = []
    start = 0
    for e in desc.extents:
        length = e.sectors * vmdk.SECTOR
        f = descriptor.sibling(e.file) if e.file else None
        if e.kind == "SPARSE":
            first = client.get(f, 0, vmdk.SECTOR)
            try:
                header = vmdk.parse_sparse_header(first, str(f))
            except vmdk.VmdkError as exc:
                raise SourceError(str(exc)) from exc
            parts.append(_sparse(client, f, header, start, length))
        else:
            parts.append(_Part(start, length, e.kind, f, e.offset_sectors * vmdk.SECTOR))
        start += length
    return parts


def _sparse(
    client: DatastoreHttp, f: DatastoreFile, header: vmdk.SparseHeader, start: int, length: int
) -> _Part:
    """Fetch the grain directory and every grain table once, in as few requests as fit."""
    gd_bytes = header.gd_entries * 4
    gd = _exact(client.get(f, header.gd_offset * vmdk.SECTOR, gd_bytes), gd_bytes, f, 0)
    gt_bytes = header.gtes_per_gt * 4
    tables: dict[int, bytes] = {}
    wanted = sorted(vmdk.gt_sectors(header, gd))
    i = 0
    while i < len(wanted):
        j = i
        while (
            j + 1 < len(wanted) and (wanted[j + 1] - wanted[i]) * vmdk.SECTOR + gt_bytes <= MAX_SPAN
        ):
            j += 1
        first, span = wanted[i], (wanted[j] - wanted[i]) * vmdk.SECTOR + gt_bytes
        blob = _exact(client.get(f, first * vmdk.SECTOR, span), span, f, first)
        for s in wanted[i : j + 1]:
            at = (s - first) * vmdk.SECTOR
            tables[s] = blob[at : at + gt_bytes]
        i = j + 1
    grains = vmdk.grain_table(header, gd, tables)
    return _Part(start, length, "SPARSE", f, 0, grains, header.grain_bytes)
