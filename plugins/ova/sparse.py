"""Decode a hosted sparse VMDK (streamOptimized or monolithicSparse) inside an OVA, in process.

Most OVAs hold streamOptimized VMDKs: a header, then every allocated grain as a marker (its
first sector and the compressed length) followed by its deflate stream, then the grain tables
and directory, and a footer that repeats the header with the directory's place.  Reading them
here rather than through qemu-nbd saves the processes, the sockets and a copy of every byte:
the grain tables are the disk's extent map (a grain never written is a hole, never read), a
chunk's grains are read with one ``pread`` of the span they occupy, and each grain's stream is
inflated on its own (``zlib.decompress``, which releases the GIL, so the copy's streams inflate
in parallel on every core).

What this module cannot decode (another layout, a compression it does not know) it says with
:class:`NotSparse`, and the caller falls back to qemu (plugins.ova.reader.VmdkReader).
"""

from __future__ import annotations

import bisect
import re
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from plugins.ova.share import RandomFile, open_local
from reconciler.sources import SourceError
from reconciler.transfer.extents import Extent

SECTOR = 512
MAGIC = b"KDMV"
_HEADER = struct.Struct("<4sIIQQQQIQQQB4sH")
_MARKER = struct.Struct("<QI")  # a grain marker: its first logical sector, compressed length
GD_AT_END = 0xFFFFFFFFFFFFFFFF
FLAG_COMPRESSED = 1 << 16
FLAG_MARKERS = 1 << 17
COMPRESS_DEFLATE = 1
MAX_GRAIN = 16 * 1024 * 1024  # grains above this are no VMDK we know


class NotSparse(Exception):
    """The member is not a sparse VMDK this module decodes (qemu may still read it)."""


class SparseVmdkReader:
    """A thread-safe :class:`~reconciler.transfer.extents.DiskReader` over a hosted sparse
    VMDK stored at ``member_offset`` in ``ova_path``, read through ``file`` (a local file or one
    on an NFS share, :mod:`plugins.ova.share`; by default ``ova_path`` opened locally).

    The header, footer and grain tables are read and checked when it opens: a member cut
    short (a truncated download) or a table pointing outside the member fails then, not
    midway through a copy.  A grain that does not inflate to its size fails its read with
    the offset, like the qemu-based reader.
    """

    def __init__(
        self,
        ova_path: str | Path,
        member_offset: int,
        member_size: int,
        *,
        member_name: str = "",
        file: RandomFile | None = None,
    ) -> None:
        self.ova_path = ova_path
        self.member_name = member_name or f"member at offset {member_offset}"
        self.base = member_offset
        self.member_size = member_size
        self.format = "vmdk"
        self._lock = threading.Lock()
        self._spans = threading.local()  # each reading thread's buffer for compressed grains
        self._file: RandomFile | None = file if file is not None else open_local(Path(ova_path))
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _fail(self, message: str) -> SourceError:
        return SourceError(f"{self.ova_path}: cannot read disk {self.member_name}: {message}")

    def _damaged(self, what: str) -> SourceError:
        return self._fail(f"the image is damaged or truncated: {what}")

    def _pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the member at ``offset`` (short only past its end)."""
        buf = bytearray(max(0, min(length, self.member_size - offset)))
        n = self._source().readinto(self.base + offset, buf) if buf else 0
        return bytes(buf[:n])

    def _span(self, offset: int, length: int) -> memoryview:
        """``length`` bytes of the member at ``offset`` (short only past its end), read into
        this thread's reused buffer: valid until the thread's next read."""
        buf = getattr(self._spans, "buf", None)
        if buf is None or len(buf) < length:
            buf = self._spans.buf = bytearray(length)
        view = memoryview(buf)[: max(0, min(length, self.member_size - offset))]
        got = self._source().readinto(self.base + offset, view) if len(view) else 0
        return view[:got]

    def _source(self) -> RandomFile:
        f = self._file
        if f is None:
            raise self._fail("reader is closed")
        return f

    def _header(self, data: bytes) -> tuple[int, ...]:
        if len(data) < _HEADER.size or data[:4] != MAGIC:
            raise NotSparse("no KDMV magic")
        return _HEADER.unpack_from(data)

    def _open(self) -> None:
        head = self._header(self._pread(0, SECTOR))
        _, version, flags, capacity, grain, d_off, d_size, gtes, _rgd, gd, *_rest = head
        compress = head[-1]
        if d_off and d_size:  # a delta disk reads through its parent: qemu says what is missing
            text = self._pread(d_off * SECTOR, min(d_size * SECTOR, 64 * 1024))
            hint = re.search(rb'parentFileNameHint\s*=\s*"([^"]*)"', text)
            if hint and hint.group(1).strip():
                raise NotSparse("a delta disk")
        if gd == GD_AT_END:  # streamOptimized: the real header is the footer's
            if self.member_size < 3 * SECTOR:
                raise self._damaged("the footer is missing")
            foot = self._pread(self.member_size - 2 * SECTOR, SECTOR)
            if len(foot) < SECTOR or foot[:4] != MAGIC:
                raise self._damaged("the footer is missing (the file was cut short)")
            _, version, flags, capacity, grain, _d, _s, gtes, _r, gd, *_rest = _HEADER.unpack_from(
                foot
            )
            compress = _HEADER.unpack_from(foot)[-1]
        if version not in (1, 2, 3):
            raise NotSparse(f"version {version}")
        self.compressed = bool(flags & FLAG_COMPRESSED)
        if self.compressed and (not flags & FLAG_MARKERS or compress != COMPRESS_DEFLATE):
            raise NotSparse("compressed without grain markers or not deflate")
        if grain <= 0 or gtes <= 0 or capacity <= 0 or grain * SECTOR > MAX_GRAIN:
            raise self._damaged(f"a header with grain {grain}, {gtes} entries per table")
        if gd == GD_AT_END or gd == 0:
            raise self._damaged("no grain directory")
        self.size = capacity * SECTOR
        self.grain = grain * SECTOR
        count = (capacity + grain - 1) // grain
        gd_entries = (count + gtes - 1) // gtes
        raw_gd = self._pread(gd * SECTOR, gd_entries * 4)
        if len(raw_gd) < gd_entries * 4:
            raise self._damaged("the grain directory points after EOF")
        tables = struct.unpack_from(f"<{gd_entries}I", raw_gd)
        # 0: never written (zeros here, no parent); 1: a zero grain; else its sector.  An
        # array, not a list: a 2 TiB disk has 32 Mi grains
        entries = array("I")
        for i, gt in enumerate(tables):
            n = min(gtes, count - len(entries))
            if gt == 0:
                entries.frombytes(bytes(n * 4))
                continue
            data = self._pread(gt * SECTOR, n * 4)
            if len(data) < n * 4:
                raise self._damaged(f"grain table {i} points after EOF")
            entries.frombytes(data)
        if sys.byteorder == "big":
            entries.byteswap()
        self.entries = entries
        self._last = self.member_size // SECTOR
        if entries and max(entries) >= self._last:
            bad = next(g for g, sec in enumerate(entries) if sec >= self._last)
            raise self._damaged(f"grain {bad}'s table entry points after EOF")
        # where a compressed grain's bytes can end: where the next one starts in the file
        self._stops = array("I", sorted({sec for sec in entries if sec > 1}))
        self._grain_sectors = grain

    def _end(self, sector: int) -> int:
        """The byte offset in the member where the grain stored at ``sector`` ends at most."""
        if not self.compressed:
            return (sector + self._grain_sectors) * SECTOR
        i = bisect.bisect_right(self._stops, sector)
        return (self._stops[i] if i < len(self._stops) else self._last) * SECTOR

    # -- DiskReader ------------------------------------------------------------------------

    def extents(self) -> Iterator[Extent]:
        """Data and zero extents from the grain tables: unwritten and zero grains are holes."""
        out: list[Extent] = []
        run, zero = 0, True  # the current run's first grain and kind: one Extent per run
        for g, s in enumerate(self.entries):
            if (s <= 1) != zero or g == 0:
                if g > run:
                    out.append(Extent(run * self.grain, (g - run) * self.grain, zero))
                run, zero = g, s <= 1
        if self.entries:
            start = run * self.grain
            out.append(Extent(start, self.size - start, zero))
        return iter(out)

    def readinto(self, offset: int, buf: bytearray | memoryview, zeroed: bool = False) -> int:
        """Fill ``buf`` from ``offset``; returns how many bytes (short only at end of disk).
        With ``zeroed`` (``buf`` holds zeros already) holes are not written at all."""
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - offset))
        if n == 0:
            return 0
        if self._file is None:
            raise self._fail("reader is closed")
        try:
            self._fill(offset, view[:n], zeroed)
        except (OSError, zlib.error, ValueError, struct.error) as e:
            raise self._fail(
                f"reading {n} bytes at offset {offset} failed ({e}); an EINVAL or EIO here means "
                "the VMDK's data is damaged at that offset (e.g. a corrupt compressed grain): "
                "export or copy the OVA again"
            ) from e
        return n

    def read(self, offset: int, length: int) -> bytearray:
        """Exactly ``length`` bytes at ``offset`` (short only at end of disk); thread-safe."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        buf = bytearray(max(0, min(length, self.size - offset)))  # zeros: holes cost nothing
        self.readinto(offset, buf, zeroed=True)
        return buf

    def _fill(self, offset: int, view: memoryview, zeroed: bool) -> None:
        grain = self.grain
        end = offset + len(view)
        first, last = offset // grain, (end - 1) // grain
        g = first
        while g <= last:
            if self.entries[g] <= 1:
                if not zeroed:
                    gs = g * grain
                    lo, hi = max(gs, offset) - offset, min(gs + grain, end) - offset
                    view[lo:hi] = _zeros(hi - lo)
                g += 1
                continue
            # a run of allocated grains lying one after another in the file: one pread
            run_end = g
            while (
                run_end + 1 <= last
                and self.entries[run_end + 1] > 1
                and self.entries[run_end + 1] * SECTOR == self._end(self.entries[run_end])
            ):
                run_end += 1
            span_start = self.entries[g] * SECTOR
            span_end = self._end(self.entries[run_end])
            data = self._span(span_start, span_end - span_start)
            for k in range(g, run_end + 1):
                at = self.entries[k] * SECTOR - span_start
                gs = k * grain
                want = min(grain, self.size - gs)
                if self.compressed:
                    lba, clen = _MARKER.unpack_from(data, at)
                    if lba * SECTOR != gs or at + 12 + clen > len(data):
                        raise ValueError(f"grain marker at sector {self.entries[k]} is wrong")
                    plain: bytes | memoryview = _inflate(data[at + 12 : at + 12 + clen], grain)
                else:
                    plain = data[at : at + want]
                if len(plain) < want:
                    raise ValueError(f"grain {k} holds {len(plain)} of {want} bytes")
                lo, hi = max(gs, offset), min(gs + grain, end)
                view[lo - offset : hi - offset] = memoryview(plain)[lo - gs : hi - gs]
            g = run_end + 1

    @property
    def closed(self) -> bool:
        return self._file is None

    def close(self) -> None:
        with self._lock:
            f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self) -> SparseVmdkReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SparseVmdkReader({str(self.ova_path)!r}, {self.member_name!r}, size={self.size})"


_ZERO = bytes(1024 * 1024)

try:  # libdeflate inflates a whole grain 2-3x faster than zlib (and drops the GIL too)
    from deflate import DeflateError, zlib_decompress
except ImportError:  # pragma: no cover - zlib alone is slower, never wrong
    DeflateError, zlib_decompress = zlib.error, None


def _inflate(stream: memoryview, grain: int) -> bytes:
    """A grain's zlib stream inflated (at most ``grain`` bytes); what libdeflate refuses (a
    damaged stream) zlib decodes or rejects with its own error, as before."""
    if zlib_decompress is not None:
        try:
            return zlib_decompress(stream, grain)
        except DeflateError:
            pass
    return zlib.decompress(stream, 15, grain)


def _zeros(n: int) -> bytes | memoryview:
    return memoryview(_ZERO)[:n] if n <= len(_ZERO) else bytes(n)
