"""VMDK layouts as they lie on a datastore: the text descriptor and hosted sparse extents.

Pure parsing, no I/O: :mod:`plugins.vsphere.datastore` fetches the bytes. A datastore disk is a
descriptor (``disk.vmdk``) naming extents: ``VMFS``/``FLAT`` extents are the raw bytes
(``disk-flat.vmdk``), read directly; ``ZERO`` extents read as zeros; ``SPARSE`` extents (hosted
sparse, magic ``KDMV``: monolithicSparse, twoGbMaxExtentSparse) are read through their grain
tables, so unallocated grains are holes the copy skips. ESXi snapshot deltas (``VMFSSPARSE``,
``SESPARSE``) and raw device mappings are refused with what to do instead.
"""

from __future__ import annotations

import re
import shlex
import struct
from dataclasses import dataclass

SECTOR = 512
SPARSE_MAGIC = b"KDMV"
DESCRIPTOR_MAX = 64 * 1024  # larger "descriptors" are not text descriptors
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
_GD_AT_END = 0xFFFFFFFFFFFFFFFF
_FLAG_COMPRESSED = 1 << 16
_EXTENT = re.compile(r"^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(.*)$")


class VmdkError(Exception):
    """The disk's layout cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class ExtentLine:
    """One ``RW <sectors> <TYPE> "<file>" [offset]`` line of a descriptor."""

    sectors: int
    kind: str  # FLAT (VMFS is the same), ZERO, SPARSE
    file: str = ""
    offset_sectors: int = 0


@dataclass(frozen=True)
class Descriptor:
    create_type: str
    extents: tuple[ExtentLine, ...]
    parent_hint: str = ""

    @property
    def size(self) -> int:
        return sum(e.sectors for e in self.extents) * SECTOR


def looks_like_descriptor(head: bytes) -> bool:
    return b"createType" in head[:DESCRIPTOR_MAX] and not head.startswith(SPARSE_MAGIC)


def parse_descriptor(text: str, where: str) -> Descriptor:
    """The extents of a descriptor; refuses layouts whose content lives elsewhere."""
    create_type, parent_hint = "", ""
    extents: list[ExtentLine] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if eq and key.strip() == "createType":
            create_type = value.strip().strip('"')
            continue
        if eq and key.strip() == "parentFileNameHint":
            parent_hint = value.strip().strip('"')
            continue
        m = _EXTENT.match(line)
        if not m:
            continue
        access, sectors, kind, rest = m.groups()
        parts = shlex.split(rest)
        kind = "FLAT" if kind == "VMFS" else kind
        if kind in ("VMFSSPARSE", "SESPARSE"):
            raise VmdkError(
                f"{where}:{lineno}: a {kind} extent is an ESXi snapshot delta: delete or "
                "consolidate the VM's snapshots, then push a new Migration"
            )
        if kind in ("VMFSRDM", "VMFSRAW"):
            raise VmdkError(
                f"{where}:{lineno}: a raw device mapping ({kind}) is not a file on the datastore"
                " and cannot be read over HTTPS; convert the RDM to a virtual disk first"
            )
        if kind not in ("FLAT", "ZERO", "SPARSE"):
            raise VmdkError(f"{where}:{lineno}: extent type {kind} is not supported")
        if access == "NOACCESS":
            raise VmdkError(f"{where}:{lineno}: extent marked NOACCESS cannot be read")
        offset = int(parts[1]) if kind == "FLAT" and len(parts) > 1 else 0
        extents.append(ExtentLine(int(sectors), kind, parts[0] if parts else "", offset))
    if not extents:
        raise VmdkError(f"{where}: not a VMDK descriptor (no extent lines)")
    if parent_hint and any(e.kind == "SPARSE" for e in extents):
        raise VmdkError(
            f"{where}: a delta disk of {parent_hint}: delete or consolidate the VM's snapshots,"
            " then push a new Migration"
        )
    return Descriptor(create_type, tuple(extents), parent_hint)


@dataclass(frozen=True)
class SparseHeader:
    """The header of a hosted sparse extent (VMware's "Virtual Disk Format 1.1", section 4)."""

    capacity: int  # sectors
    grain_size: int  # sectors
    descriptor_offset: int
    descriptor_size: int
    gtes_per_gt: int
    gd_offset: int  # sectors
    flags: int

    @property
    def grain_bytes(self) -> int:
        return self.grain_size * SECTOR

    @property
    def gd_entries(self) -> int:
        span = self.grain_size * self.gtes_per_gt
        return (self.capacity + span - 1) // span


def parse_sparse_header(data: bytes, where: str) -> SparseHeader:
    if len(data) < _HEADER.size or data[:4] != SPARSE_MAGIC:
        raise VmdkError(f"{where}: not a hosted sparse extent (no KDMV magic)")
    (_, _, flags, capacity, grain, d_off, d_size, gtes, _rgd, gd, *_rest) = _HEADER.unpack_from(
        data
    )
    if flags & _FLAG_COMPRESSED or gd == _GD_AT_END:
        raise VmdkError(
            f"{where}: a stream-optimized (compressed) VMDK; datastores hold these only as "
            "uploads: deploy it as a VM (or import the OVA with the OVA provider) first"
        )
    if grain <= 0 or gtes <= 0 or capacity <= 0:
        raise VmdkError(f"{where}: corrupt sparse header (grain {grain}, GTEs {gtes})")
    return SparseHeader(capacity, grain, d_off, d_size, gtes, gd, flags)


def grain_table(header: SparseHeader, gd: bytes, tables: dict[int, bytes]) -> list[int]:
    """Sector of every grain in the extent (0: unallocated, 1: zero grain), from the grain
    directory and the grain tables it points to (``tables`` by GT sector)."""
    count = (header.capacity + header.grain_size - 1) // header.grain_size
    out: list[int] = []
    for i in range(header.gd_entries):
        (gt_sector,) = struct.unpack_from("<I", gd, i * 4)
        n = min(header.gtes_per_gt, count - len(out))
        if gt_sector == 0:
            out.extend([0] * n)
        else:
            out.extend(struct.unpack_from(f"<{n}I", tables[gt_sector]))
    return out


def gt_sectors(header: SparseHeader, gd: bytes) -> list[int]:
    return [s for s in struct.unpack_from(f"<{header.gd_entries}I", gd) if s != 0]
