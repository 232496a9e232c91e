"""Damage an OVA the way disks and archives get damaged: a flipped byte, a member changed or a
manifest dropped; each test breaks only what it means to."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path


def rewrite_ova(
    ova: Path,
    change: Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo, bytes] | None],
    manifest: bool = True,
) -> None:
    """Write the OVA again with ``change`` applied to each member; the manifest is made anew
    from what was written (``manifest=False`` drops it), so only what a test breaks is broken."""
    with tarfile.open(ova) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]
    out = []
    for m, data in members:
        if m.name.endswith(".mf"):
            continue
        changed = change(m, data)
        if changed is not None:
            out.append(changed)
    lines = [f"SHA256({m.name})= {hashlib.sha256(d).hexdigest()}" for m, d in out if m.isfile()]
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        for m, data in out:
            m.size = len(data) if m.isfile() else 0
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
        if manifest:
            mf = "\n".join(lines).encode() + b"\n"
            info = tarfile.TarInfo(ova.stem + ".mf")
            info.size = len(mf)
            tar.addfile(info, io.BytesIO(mf))


def flip_in_vmdk(ova: Path, at: float = 0.5) -> None:
    """Flip one byte inside the VMDK's compressed grains, in place (the manifest stays)."""
    with tarfile.open(ova) as tar:
        vmdk = next(m for m in tar if m.name.endswith(".vmdk"))
    pos = vmdk.offset_data + int(vmdk.size * at)
    with ova.open("r+b") as f:
        f.seek(pos)
        byte = f.read(1)
        f.seek(pos)
        f.write(bytes([byte[0] ^ 0xFF]))
