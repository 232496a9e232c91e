"""An OVA's manifest (``.mf``): the digests its author wrote for every file of the archive.

VMware and ovftool write ``SHA256(<file>)= <hex>`` lines (``SHA1`` and ``SHA512`` in older and
newer exports). The OVF descriptor is checked when the OVA is scanned; a disk file when it is
opened for a copy, by one sequential read of its bytes as they lie in the archive. That read is
separate from the copy's: the copy reads the disk's *decoded* content through qemu-nbd, in
another process, so the archive bytes the manifest digests never pass through ours. The
sequential read costs a fraction of the copy (no decompression) and leaves the file in the
page cache for it; a checked file is not checked again while it keeps its size and time.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from plugins.ova.share import Folder, RandomFile

_LINE = re.compile(
    r"^\s*(?P<algo>SHA1|SHA256|SHA512)\s*\((?P<name>.+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$"
)
_ALGOS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
READ_SIZE = 1024 * 1024  # one RPC of the usual rtmax: libnfs reads it into our buffer (zero-copy)
IN_FLIGHT = 1  # a read running while a piece is hashed: more cost CPU, here (bench_nfs_ova.py)


@dataclass(frozen=True)
class Digest:
    """One manifest line: the algorithm as the manifest names it, and the expected hex."""

    algo: str
    hex: str

    def of(self, data: bytes) -> str:
        return hashlib.new(_ALGOS[self.algo], data).hexdigest()


def parse_manifest(text: str) -> tuple[dict[str, Digest], list[str]]:
    """Digests by file name, and the lines that could not be read (for a warning)."""
    found: dict[str, Digest] = {}
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            bad.append(line.strip()[:80])
            continue
        found[m["name"].strip()] = Digest(m["algo"], m["hex"].lower())
    return found, bad


def read_through(
    f: RandomFile,
    offset: int,
    size: int,
    consume: Callable[[memoryview], object],
    in_flight: int = IN_FLIGHT,
) -> int:
    """Hand ``[offset, offset + size)`` of ``f`` to ``consume`` in order, in ``READ_SIZE``
    pieces, with ``in_flight`` reads running while a piece is consumed; returns the bytes
    missing (0 unless the file is shorter). ``in_flight + 1`` buffers are reused: no
    allocation per read."""
    end = offset + size
    free = [bytearray(READ_SIZE) for _ in range(in_flight + 1)]
    pending: deque[tuple[int, bytearray, Future[tuple[int, int]]]] = deque()
    pos = offset
    with ThreadPoolExecutor(in_flight, thread_name_prefix="ova-read") as pool:

        def submit() -> None:
            nonlocal pos
            while free and pos < end and len(pending) < in_flight:
                buf = free.pop()
                want = min(READ_SIZE, end - pos)
                pending.append((pos, buf, pool.submit(_fill, f, pos, buf, want)))
                pos += want

        submit()
        while pending:
            start, buf, fut = pending.popleft()
            n, want = fut.result()
            if n < want:
                for _, _, rest in pending:
                    rest.cancel()
                return end - start - n
            submit()
            consume(memoryview(buf)[:n])
            free.append(buf)
    return 0


def _fill(f: RandomFile, offset: int, buf: bytearray, want: int) -> tuple[int, int]:
    return f.readinto(offset, memoryview(buf)[:want]), want


_checked: set[tuple[str, int, int, str, int, int, str]] = set()
_checked_lock = threading.Lock()


def check_member(
    folder: Folder,
    ova: str,
    name: str,
    offset: int,
    size: int,
    digest: Digest,
    mf_name: str,
) -> str:
    """ "" when the archive bytes of member ``name`` match ``digest``, else what is wrong.

    ``ova`` is the OVA's path in ``folder`` (local or an NFS share): one sequential pass of
    reads into two reused buffers, the next read in flight while the last is hashed."""
    st = folder.stat(ova)
    key = (folder.display(ova), st.size, st.mtime_ns, name, offset, size, digest.hex)
    with _checked_lock:
        if key in _checked:
            return ""
    h = hashlib.new(_ALGOS[digest.algo])
    f = folder.open(ova)
    try:
        left = read_through(f, offset, size, h.update)
    finally:
        f.close()
    if left:
        return f"{name} ends {left} bytes early in the archive"
    got = h.hexdigest()
    if got != digest.hex:
        return (
            f"{name} does not match its {digest.algo} digest in {mf_name} "
            f"(expected {digest.hex[:16]}..., read {got[:16]}...): the OVA was damaged after "
            "it was exported; export or copy it again"
        )
    with _checked_lock:
        _checked.add(key)
    return ""
