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
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(
    r"^\s*(?P<algo>SHA1|SHA256|SHA512)\s*\((?P<name>.+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$"
)
_ALGOS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}
READ_SIZE = 4 * 1024 * 1024


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


_checked: set[tuple[str, int, int, str, int, int, str]] = set()
_checked_lock = threading.Lock()


def check_member(ova: Path, name: str, offset: int, size: int, digest: Digest, mf_name: str) -> str:
    """ "" when the archive bytes of member ``name`` match ``digest``, else what is wrong."""
    st = ova.stat()
    key = (str(ova), st.st_size, st.st_mtime_ns, name, offset, size, digest.hex)
    with _checked_lock:
        if key in _checked:
            return ""
    h = hashlib.new(_ALGOS[digest.algo])
    with ova.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(READ_SIZE, left))
            if not chunk:
                return f"{name} ends {left} bytes early in the archive"
            h.update(chunk)
            left -= len(chunk)
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
