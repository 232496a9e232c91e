"""A Glance image read with Range requests: the disk reader of an OpenStack volume's copy.

``GET <glance>/v2/images/<id>/file`` with ``Range: bytes=a-b`` answers 206. A raw image is one
data extent (the engine still leaves its zero blocks unwritten on the target); a qcow2 image
(what the volume is uploaded as by default) is read through its L1/L2 tables, so only its
allocated clusters cross the network and its holes are zero extents.

A read that fails on the network or with a 5xx (Glance restarting) is retried with backoff for
up to ``retry_seconds``; a 401 takes a new token first. Connections are per thread, verified
against the same CA as the Keystone session.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

from reconciler.sources import SourceError
from reconciler.transfer.extents import Extent

log = logging.getLogger(__name__)
RETRY_SECONDS = 120.0
QCOW2_MAGIC = b"QFI\xfb"
L1_MASK = 0x00FFFFFFFFFFFE00
COMPRESSED = 1 << 62


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """The same trust as the Keystone session: a CA file, the system CAs, or none."""
    if verify is False:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class _Retry(Exception):
    pass


class _Auth(Exception):
    pass


class GlanceFile:
    """Range GETs of one image's data, a keep-alive connection per thread, retried."""

    def __init__(
        self,
        endpoint: str,
        image_id: str,
        token: Callable[[bool], str],
        context: ssl.SSLContext,
        retry_seconds: float = RETRY_SECONDS,
        timeout: float = 60.0,
    ) -> None:
        u = urlparse(endpoint)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname or "", u.port or (443 if self.https else 80)
        root = u.path.rstrip("/")
        root = root[: -len("/v2")] if root.endswith("/v2") else root  # a versioned endpoint
        self.path = f"{root}/v2/images/{image_id}/file"
        self.image_id = image_id
        self.token, self.context = token, context
        self.retry_seconds, self.timeout = retry_seconds, timeout
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self.bytes_read = 0
        self.retries = 0

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def get(self, start: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``start`` (fewer only at the image's end)."""
        if length <= 0:
            return b""
        deadline = time.monotonic() + self.retry_seconds
        delay, attempts, fresh = 0.5, 0, False
        while True:
            attempts += 1
            try:
                return self._get_once(start, length, fresh)
            except _Auth as exc:
                self._drop()
                last: Exception = exc
                if not fresh:
                    fresh = True
                    continue
            except ssl.SSLCertVerificationError as exc:
                raise SourceError(
                    f"the certificate of Glance at {self.host}:{self.port} is not trusted "
                    f"({exc.verify_message}): put its CA in the Provider's secret as 'cacert'"
                ) from exc
            except (OSError, http.client.HTTPException, _Retry) as exc:
                self._drop()
                last = exc
            if time.monotonic() + delay > deadline:
                raise SourceError(
                    f"reading image {self.image_id} from Glance at {self.host}:{self.port} failed "
                    f"{attempts} times over {self.retry_seconds:.0f}s (last: {last}); the copy "
                    "resumes from its last checkpoint once Glance answers again"
                ) from last
            self.retries += 1
            log.warning(
                "Glance read of %s failed (%s); retrying in %.1fs", self.image_id, last, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _get_once(self, start: int, length: int, fresh: bool) -> bytes:
        conn = self._conn()
        headers = {
            "Range": f"bytes={start}-{start + length - 1}",
            "X-Auth-Token": self.token(fresh),
        }
        conn.request("GET", self.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status == 401:
            raise _Auth("HTTP 401")
        if resp.status == 416:
            return b""
        if resp.status >= 500:
            raise _Retry(f"HTTP {resp.status} {resp.reason}")
        if resp.status == 200:  # Range ignored: the whole image came
            body = body[start : start + length]
        elif resp.status != 206:
            raise SourceError(
                f"reading image {self.image_id} from Glance: HTTP {resp.status} {resp.reason}"
            )
        with self._lock:
            self.bytes_read += len(body)
        if len(body) < length:  # a connection cut mid-body reads short: ask again
            raise _Retry(f"short read ({len(body)} of {length} bytes)")
        return body

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()


class RawImage:
    """A raw image: its bytes are the disk's, one data extent."""

    def __init__(self, f: GlanceFile, size: int) -> None:
        self.file, self.size = f, size

    def extents(self) -> Iterator[Extent]:
        yield Extent(0, self.size, False)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        return self.file.get(offset, length)

    def close(self) -> None:
        self.file.close()


class Qcow2Image:
    """A qcow2 image without backing file, encryption or compression, read cluster by cluster:
    unallocated and zero clusters read as zeros without a request."""

    def __init__(self, f: GlanceFile, size: int) -> None:
        self.file = f
        head = f.get(0, 112)
        if head[:4] != QCOW2_MAGIC:
            raise SourceError(f"image {f.image_id} is not qcow2")
        version, backing_off = struct.unpack(">IQ", head[4:16])
        cluster_bits, virtual = struct.unpack(">IQ", head[20:32])
        crypt, l1_size, l1_off = struct.unpack(">IIQ", head[32:48])
        incompatible = struct.unpack(">Q", head[72:80])[0] if version >= 3 else 0
        if backing_off or crypt or incompatible & ~0x9:  # dirty (1) and zstd (8) are fine
            raise SourceError(
                f"image {f.image_id}: a qcow2 with a backing file, encryption, an external data "
                "file or extended L2 entries cannot be read"
            )
        self.cluster = 1 << cluster_bits
        self.size = virtual
        if size and virtual != size:
            raise SourceError(f"image {f.image_id} holds {virtual} bytes, the volume {size}")
        l1 = struct.unpack(f">{l1_size}Q", f.get(l1_off, l1_size * 8)) if l1_size else ()
        per_l2 = self.cluster // 8
        self.map: list[int] = []  # per guest cluster: host offset, 0 unallocated/zero
        for entry in l1:
            l2_off = entry & L1_MASK
            if not l2_off:
                self.map += [0] * per_l2
                continue
            for e in struct.unpack(f">{per_l2}Q", f.get(l2_off, self.cluster)):
                if e & COMPRESSED:
                    raise SourceError(f"image {f.image_id}: compressed qcow2 clusters")
                self.map.append(0 if e & 1 else e & L1_MASK)
        clusters = -(-virtual // self.cluster)
        self.map = (self.map + [0] * clusters)[:clusters]

    def extents(self) -> Iterator[Extent]:
        start, zero = 0, not self.map[0] if self.map else True
        for i, host in enumerate(self.map):
            z = not host
            if z != zero:
                yield Extent(start, i * self.cluster - start, zero)
                start, zero = i * self.cluster, z
        if self.size > start:
            yield Extent(start, self.size - start, zero)

    def read(self, offset: int, length: int) -> bytes:
        length = max(0, min(length, self.size - offset))
        out = bytearray()
        pos, end = offset, offset + length
        run_host, run_len = -1, 0  # a run of clusters adjacent in the file: one request

        def flush() -> None:
            nonlocal run_len
            if run_len:
                out.extend(bytes(run_len) if run_host == 0 else self.file.get(run_host, run_len))
                run_len = 0

        while pos < end:
            idx, within = divmod(pos, self.cluster)
            take = min(self.cluster - within, end - pos)
            host = self.map[idx]
            at = host + within if host else 0
            if run_len and (
                (at == 0 and run_host == 0) or (at and run_host and run_host + run_len == at)
            ):
                run_len += take
            else:
                flush()
                run_host, run_len = at, take
            pos += take
        flush()
        return bytes(out)

    def close(self) -> None:
        self.file.close()
