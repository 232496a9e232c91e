"""Raw disk images and block devices: the local target's disks and the engine's simplest peer.

Images stay sparse: the engine hands the writer no zero pieces where the image reads as zeros
already (a precopy round writes zeros only over data it replaces), and the file is grown with
ftruncate, so a 100 GiB disk holding 3 GiB of data takes 3 GiB on the filesystem.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reconciler.transfer.extents import Extent


def allocated_bytes(path: str | Path) -> int:
    """Bytes the filesystem really holds for ``path`` (shows whether an image stayed sparse)."""
    return os.stat(path).st_blocks * 512


def _device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def file_extents(fd: int, size: int) -> Iterator[Extent]:
    """Data and hole extents of an open file from SEEK_DATA/SEEK_HOLE, covering ``[0, size)``.

    Where the filesystem or device cannot tell (EINVAL), everything is reported as data:
    slower, never wrong.
    """
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after pos: the rest is a hole
                yield Extent(pos, size - pos, True)
                return
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield Extent(pos, size - pos, False)
                return
            raise
        data = min(data, size)
        if data > pos:
            yield Extent(pos, data - pos, True)
        if data >= size:
            return
        try:
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
        except OSError as e:
            if e.errno not in (errno.ENXIO, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            hole = size
        if hole <= data:  # a filesystem that contradicts itself: take the rest as data
            hole = size
        yield Extent(data, hole - data, False)
        pos = hole


class RawDiskReader:
    """DiskReader over a raw image or block device; ``read`` is os.pread, safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self.size = _device_size(self._fd)
        except BaseException:
            os.close(self._fd)
            raise

    def extents(self) -> Iterator[Extent]:
        """Data/zero extents of the image; holes need not be read."""
        return file_extents(self._fd, self.size)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; short only at the end of the disk."""
        length = max(0, min(length, self.size - offset))
        data = os.pread(self._fd, length, offset)
        if len(data) == length:
            return data
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(self._fd, length - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset`` (``preadv``, no copy); returns how many bytes, short
        only at the end of the disk.  The engine reads chunks into buffers it reuses: no
        allocation and no page faults per chunk.  A subclass that reads its own way (one that
        redefines ``read``: a wrapper that counts, gates or fails reads) is read through it."""
        if type(self).read is not RawDiskReader.read:
            data = self.read(offset, len(buf))
            memoryview(buf).cast("B")[: len(data)] = data
            return len(data)
        return self.pread_into(offset, buf)

    def pread_into(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset`` (``preadv``, no copy); returns how many bytes, short
        only at the end of the disk.  What the engine reads a written chunk back with."""
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self.size - offset))
        got = 0
        while got < n:
            more = os.preadv(self._fd, [view[got:n]], offset + got)
            if more <= 0:
                break
            got += more
        return got

    @contextmanager
    def mapped(self, offset: int, length: int) -> Iterator[memoryview]:
        """``length`` bytes at ``offset`` as a read-only view of the file's pages, not a copy:
        how the engine reads a chunk it just wrote back to hash it (what the kernel holds for
        the target, as ``pread`` would return it, without copying 4 MiB per chunk).  The pages
        are mapped in one call (``MADV_POPULATE_READ``) rather than faulted in one by one.

        The view is valid inside the ``with`` only.  A subclass that reads its own way is read
        through ``read``, as ``readinto`` does.  The file must not shrink meanwhile (the output
        is held under the transfer's lock): a mapped page past its end would kill the process.
        """
        length = max(0, min(length, self.size - offset))
        if length == 0 or type(self).read is not RawDiskReader.read:
            yield memoryview(self.read(offset, length))
            return
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        m = mmap.mmap(self._fd, offset - start + length, prot=mmap.PROT_READ, offset=start)
        try:
            _populate(m)
            with memoryview(m) as whole, whole[offset - start :] as view:
                yield view
        finally:
            m.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RawDiskReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14; Python 3.13
_populate_works = True


def _populate(m: mmap.mmap) -> None:
    """Map all of ``m``'s pages at once; older kernels refuse (EINVAL) and fault them in.
    No read-around: a page the copy left a hole reads as zeros, and reading the disk around
    it would fill the page cache with pages the copy has yet to write."""
    global _populate_works
    m.madvise(mmap.MADV_RANDOM)
    if _populate_works:
        try:
            m.madvise(_MADV_POPULATE_READ)
        except OSError:
            _populate_works = False


_FULL = (errno.ENOSPC, errno.EDQUOT)


class RawDiskWriter:
    """DiskWriter into a sparse raw image (created if absent) or an existing device or file.

    A file smaller than ``size`` is grown with ftruncate (holes read as zeros); nothing is ever
    shrunk, and a block device smaller than ``size`` is refused.  ``flush`` is fdatasync, which
    the engine calls before it records chunks as copied.
    """

    def __init__(self, path: str | Path, size: int) -> None:
        self.path = Path(path)
        self.size = size
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            st = os.fstat(self._fd)
            if stat.S_ISREG(st.st_mode):
                if st.st_size < size:
                    os.ftruncate(self._fd, size)
            else:
                have = _device_size(self._fd)
                if have < size:
                    raise OSError(
                        errno.ENOSPC, f"{self.path} holds {have} bytes, the disk needs {size}"
                    )
        except BaseException:
            os.close(self._fd)
            raise

    def write(self, offset: int, data: bytes) -> None:
        """Write all of ``data`` at ``offset`` (pwrite may be partial; loop until done)."""
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(
                f"write of {len(data)} bytes at {offset} outside a {self.size}-byte disk"
            )
        view = memoryview(data)
        while view:
            try:
                n = os.pwrite(self._fd, view, offset)
            except OSError as exc:
                if exc.errno in _FULL:
                    raise self._full(exc, f"writing {len(view)} bytes at offset {offset}") from exc
                raise
            if n <= 0:
                raise OSError(errno.EIO, f"pwrite returned {n} at offset {offset}")
            view = view[n:]
            offset += n

    def flush(self) -> None:
        """Make everything written so far durable (fdatasync)."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            if exc.errno in _FULL:
                raise self._full(exc, "making the written data durable") from exc
            raise

    def _full(self, exc: OSError, doing: str) -> OSError:
        """ENOSPC with the path and what to do."""
        return OSError(
            exc.errno,
            f"no space left on the file system holding {self.path} ({doing}; the disk is "
            f"{self.size} bytes): free space there or point the target elsewhere, then run "
            "again; what was copied is kept and the copy resumes",
        )

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RawDiskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
