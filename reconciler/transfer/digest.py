"""The logical-content digest that proves a copied disk equals its source.

A whole-disk sha256 can neither be computed in parallel nor resumed, so the disk is cut into
fixed chunks, each chunk is hashed on its own, and the digest is the sha256 of the chunk hashes
in order.  Chunks that are known to be zeros (holes, zero extents) take a precomputed hash and are
never read.

Each chunk's hash is itself a small tree: the chunk is cut into 64 KiB leaves, each leaf is
hashed, and the chunk's hash is the sha256 of its leaf hashes.  What the engine records per
chunk is that leaf list (``chunk_record``), so a warm precopy round that changed 4 KiB of a
4 MiB chunk re-hashes (and verifies) one leaf, not the chunk: a round costs what changed.

The prefix names the format and the geometry, because the same bytes give a different digest
with a different chunking: ``sha256t-4m-64k:<hex>`` for the tree format.  Copies recorded by
older versions hold one plain sha256 per chunk (a 32-byte record, digest ``sha256-4m:<hex>``);
those records are still understood (``is_legacy``) and never mixed with tree records.
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
LEAF_SIZE = 64 * 1024  # the tree's leaves: what a precopy round re-hashes and re-reads
LEGACY_LEN = 32  # a record of the older format: one sha256 of the whole chunk
TREE_TAG = b"\x01"  # first byte of a tree record, followed by its leaf hashes

T = TypeVar("T")
R = TypeVar("R")


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    """Plain sha256 of a buffer (a leaf, or a chunk in the older format); hashlib drops the GIL
    for large buffers, so streams run in parallel."""
    return hashlib.sha256(data).digest()


def leaf_size(chunk_size: int) -> int:
    """The tree's leaf size for a chunking: 64 KiB, or the chunk itself for odd sizes (tests)."""
    return LEAF_SIZE if chunk_size % LEAF_SIZE == 0 else chunk_size


def leaf_count(length: int, leaf: int) -> int:
    return (length + leaf - 1) // leaf


def leaf_hash(data: bytes | bytearray, start: int, end: int) -> bytes:
    """Hash of ``data[start:end]`` (one leaf); all-zero leaves take the cached constant."""
    n = end - start
    if data.startswith(zeros(n), start):
        return zero_chunk_hash(n)
    return hashlib.sha256(memoryview(data)[start:end]).digest()


def chunk_record(data: bytes | bytearray, chunk_size: int) -> bytes:
    """What the engine records for one chunk of content ``data``: the tree's leaf hashes."""
    leaf = leaf_size(chunk_size)
    n = len(data)
    return TREE_TAG + b"".join(leaf_hash(data, p, min(p + leaf, n)) for p in range(0, n, leaf))


@lru_cache(maxsize=64)
def zero_chunk_record(length: int, chunk_size: int) -> bytes:
    """The record of an all-zero chunk of ``length`` bytes, computed once (holes cost nothing)."""
    leaf = leaf_size(chunk_size)
    full, rest = divmod(length, leaf)
    tail = zero_chunk_hash(rest) if rest else b""
    return TREE_TAG + zero_chunk_hash(leaf) * full + tail


def is_legacy(record: bytes) -> bool:
    """True for a record of the older format (one plain sha256 of the chunk)."""
    return len(record) == LEGACY_LEN


def record_leaves(record: bytes) -> list[bytes]:
    """The leaf hashes of a tree record, in order."""
    assert not is_legacy(record) and record[:1] == TREE_TAG, "a tree record"
    return [record[i : i + 32] for i in range(1, len(record), 32)]


def record_of_leaves(leaves: Iterable[bytes]) -> bytes:
    return TREE_TAG + b"".join(leaves)


def node_hash(record: bytes) -> bytes:
    """The chunk's hash in the disk digest: its tree's root (a legacy record is its own hash)."""
    if is_legacy(record):
        return record
    if record[:1] != TREE_TAG or (len(record) - 1) % 32:
        raise ValueError(f"a chunk record of {len(record)} bytes in no known format")
    return hashlib.sha256(memoryview(record)[1:]).digest()


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


def _size_name(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB}m"
    if n % 1024 == 0:
        return f"{n // 1024}k"
    return f"{n}b"


def digest_prefix(chunk_size: int, legacy: bool = False) -> str:
    """``sha256t-4m-64k`` for 4 MiB chunks of 64 KiB leaves; ``sha256-4m`` in the older,
    flat format.  Odd sizes (tests) are named in KiB or bytes."""
    if legacy:
        return f"sha256-{_size_name(chunk_size)}"
    return f"sha256t-{_size_name(chunk_size)}-{_size_name(leaf_size(chunk_size))}"


def combine(chunk_records: Iterable[bytes], chunk_size: int = CHUNK_SIZE) -> str:
    """The disk digest from its chunk records, in chunk order (all of one format)."""
    h = hashlib.sha256()
    kinds = set()
    for rec in chunk_records:
        kinds.add(is_legacy(rec))
        h.update(node_hash(rec))
    if len(kinds) > 1:
        raise ValueError("chunk records of two digest formats cannot make one digest")
    return f"{digest_prefix(chunk_size, legacy=kinds == {True})}:{h.hexdigest()}"


def digest_of_bytes(data: bytes, chunk_size: int = CHUNK_SIZE) -> str:
    """The digest of a whole disk held in memory (small demo disks)."""
    return combine(
        (
            chunk_record(data[i : i + chunk_size], chunk_size)
            for i in range(0, len(data), chunk_size)
        ),
        chunk_size,
    )


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
            hashes[idx] = zero_chunk_record(chunk_length(idx, size, chunk_size), chunk_size)
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
    legacy: bool = False,
) -> dict[int, bytes]:
    """Records of some chunks of a reader's first ``size`` bytes, read in parallel (with
    ``legacy``, in the older flat format).

    Lets a precopy round verify the chunks it wrote without reading the whole disk again.
    """

    def one(idx: int) -> tuple[int, bytes]:
        n = chunk_length(idx, size, chunk_size)
        data = reader.read(idx * chunk_size, n)
        if len(data) != n:
            raise OSError(f"short read at offset {idx * chunk_size}: {len(data)} of {n} bytes")
        if legacy:
            return idx, zero_chunk_hash(n) if is_zero(data) else chunk_hash(data)
        return idx, chunk_record(data, chunk_size)

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
