"""The logical-content digest that proves a copied disk equals its source.

A whole-disk sha256 can neither be computed in parallel nor resumed, so the disk is cut into
fixed chunks, each chunk is hashed on its own, and the digest is the sha256 of the chunk hashes
in order.  Chunks that are known to be zeros (holes, zero extents) take a precomputed hash and are
never read.  The prefix names the chunk size, because the same bytes give a different digest
with a different chunking: ``sha256-4m:<hex>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from reconciler.transfer.extents import DiskReader, Extent

MiB = 1024 * 1024
CHUNK_SIZE = 4 * MiB

T = TypeVar("T")
R = TypeVar("R")


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    """sha256 of one chunk; hashlib drops the GIL for large buffers, so streams run in parallel."""
    return hashlib.sha256(data).digest()


@lru_cache(maxsize=64)
def zero_chunk_hash(length: int) -> bytes:
    """Hash of ``length`` zero bytes, computed once per length so holes cost nothing."""
    return hashlib.sha256(bytes(length)).digest()


@lru_cache(maxsize=16)
def zeros(length: int) -> bytes:
    """A shared zero buffer: ``data == zeros(len(data))`` is a memcmp, no allocation."""
    return bytes(length)


def is_zero(data: bytes) -> bool:
    """True when ``data`` is all zero bytes (a memcmp against a cached buffer)."""
    return data == zeros(len(data))


def digest_prefix(chunk_size: int) -> str:
    """``sha256-4m`` for 4 MiB chunks; odd sizes (tests) are named in KiB or bytes."""
    if chunk_size % MiB == 0:
        return f"sha256-{chunk_size // MiB}m"
    if chunk_size % 1024 == 0:
        return f"sha256-{chunk_size // 1024}k"
    return f"sha256-{chunk_size}b"


def combine(chunk_hashes: Iterable[bytes], chunk_size: int = CHUNK_SIZE) -> str:
    """The disk digest from its chunk hashes, in chunk order."""
    h = hashlib.sha256()
    for ch in chunk_hashes:
        h.update(ch)
    return f"{digest_prefix(chunk_size)}:{h.hexdigest()}"


def chunk_count(size: int, chunk_size: int) -> int:
    return (size + chunk_size - 1) // chunk_size


def chunk_length(idx: int, size: int, chunk_size: int) -> int:
    """Length of chunk ``idx`` (the last one may be short)."""
    return min(chunk_size, size - idx * chunk_size)


def data_chunk_flags(extents: Iterable[Extent], size: int, chunk_size: int) -> bytearray:
    """One flag per chunk: 1 if the chunk touches data (or a range no extent describes).

    Only chunks lying entirely inside zero extents get 0; those are never read or written.
    Gaps in the extent list are treated as data, so a sloppy reader costs speed, not content.
    """
    n = chunk_count(size, chunk_size)
    flags = bytearray(n)

    def mark(start: int, end: int) -> None:
        start, end = max(start, 0), min(end, size)
        if end <= start:
            return
        first, last = start // chunk_size, (end - 1) // chunk_size
        flags[first : last + 1] = b"\x01" * (last - first + 1)

    pos = 0
    for ext in extents:
        if ext.start > pos:
            mark(pos, ext.start)
        if not ext.zero:
            mark(ext.start, ext.end)
        pos = max(pos, ext.end)
        if pos >= size:
            break
    if pos < size:
        mark(pos, size)
    return flags


def bounded_map(
    pool: ThreadPoolExecutor,
    fn: Callable[[T], R],
    items: Iterable[T],
    max_inflight: int,
) -> Iterator[R]:
    """Like ``pool.map`` but with at most ``max_inflight`` pending calls (bounded memory).

    Results come back in completion order; an exception is raised as soon as it is seen,
    after the calls already started have finished.
    """
    pending: set[Future[R]] = set()
    try:
        for item in items:
            while len(pending) >= max_inflight:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
            pending.add(pool.submit(fn, item))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        wait(pending)


def disk_digest_of_reader(
    reader: DiskReader,
    chunk_size: int = CHUNK_SIZE,
    streams: int = 4,
    size: int | None = None,
) -> str:
    """Digest of a reader's first ``size`` bytes (default: all of it), read in parallel.

    ``size`` lets a copy be verified on a target larger than its source (a block device).
    """
    size = reader.size if size is None else size
    if size > reader.size:
        raise ValueError(f"digest of {size} bytes asked from a {reader.size}-byte disk")
    flags = data_chunk_flags(reader.extents(), size, chunk_size)
    hashes: list[bytes] = [b""] * len(flags)
    for idx, flag in enumerate(flags):
        if not flag:
            hashes[idx] = zero_chunk_hash(chunk_length(idx, size, chunk_size))
    work = [i for i, f in enumerate(flags) if f]
    for idx, h in chunk_hashes_of_reader(reader, work, size, chunk_size, streams).items():
        hashes[idx] = h
    return combine(hashes, chunk_size)


def chunk_hashes_of_reader(
    reader: DiskReader,
    indices: Iterable[int],
    size: int,
    chunk_size: int = CHUNK_SIZE,
    streams: int = 4,
) -> dict[int, bytes]:
    """Hashes of some chunks of a reader's first ``size`` bytes, read in parallel.

    Lets a precopy round verify the chunks it wrote without reading the whole disk again.
    """

    def one(idx: int) -> tuple[int, bytes]:
        n = chunk_length(idx, size, chunk_size)
        data = reader.read(idx * chunk_size, n)
        if len(data) != n:
            raise OSError(f"short read at offset {idx * chunk_size}: {len(data)} of {n} bytes")
        return idx, zero_chunk_hash(n) if is_zero(data) else chunk_hash(data)

    streams = max(1, streams)
    out: dict[int, bytes] = {}
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="digest") as pool:
        for idx, h in bounded_map(pool, one, indices, streams * 2):
            out[idx] = h
    return out


def disk_digest_of_file(
    path: str | Path, chunk_size: int = CHUNK_SIZE, streams: int = 2, size: int | None = None
) -> str:
    """Digest of a raw image or block device; holes (SEEK_HOLE) are skipped without reading."""
    from reconciler.transfer.rawfile import RawDiskReader  # targets build on transfer, not back

    reader = RawDiskReader(path)
    try:
        return disk_digest_of_reader(reader, chunk_size, streams, size)
    finally:
        reader.close()
