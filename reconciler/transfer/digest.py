"""The logical-content digest that proves a copied disk equals its source.

A whole-disk hash can neither be computed in parallel nor resumed, so the disk is cut into
fixed chunks, each chunk is hashed on its own, and the digest is the hash of the chunk hashes
in order.  Chunks that are known to be zeros (holes, zero extents) take a precomputed hash and are
never read.

Each chunk's hash is itself a small tree: the chunk is cut into 64 KiB leaves, each leaf is
hashed, and the chunk's hash is the hash of its leaf hashes.  What the engine records per
chunk is that leaf list (``chunk_record``), so a warm precopy round that changed 4 KiB of a
4 MiB chunk re-hashes (and verifies) one leaf, not the chunk: a round costs what changed.

The hash is XXH3-128 (:data:`XXH3T`, ``xxh3t-4m-64k:<hex>``): the digest proves a copy, it
guards against bad disks, networks and bugs, not against an adversary, and XXH3 runs at memory
speed (some 30 GB/s here) where SHA-256 runs at 1.7 GB/s, more than the whole copy's CPU when
the source and the read-back are both hashed.  The prefix names the format and the geometry,
because the same bytes give a different digest with another hash or chunking.  Records are
tagged with their format, so records of older versions are always recognised, never misread:

* ``sha256t-4m-64k``: the same tree with SHA-256 (records ``\\x01`` + 32-byte leaf hashes);
* ``sha256-4m``: one plain SHA-256 per chunk (a 32-byte record, ``is_legacy``).

A disk keeps the format its records were made in (a copy or a warm migration begun by an older
version is resumed in its format, see the engine); records of two formats never make one digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import xxhash

from reconciler.transfer.extents import DiskReader, Extent

MiB = 1024 * 1024
CHUNK_SIZE = 4 * MiB
LEAF_SIZE = 64 * 1024  # the tree's leaves: what a precopy round re-hashes and re-reads
LEGACY_LEN = 32  # a record of the oldest format: one sha256 of the whole chunk
TREE_TAG = b"\x01"  # first byte of a sha256t record, followed by its leaf hashes
XXH3_TAG = b"\x02"  # first byte of an xxh3t record

T = TypeVar("T")
R = TypeVar("R")


def _sha256(data: Any) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, eq=False)
class DigestFormat:
    """One way of hashing a disk: its name, the hash, and how its chunk records look.

    ``tag`` starts a tree record (a chunk's leaf hashes); a format without one records one
    hash per chunk (the oldest format).  Formats are singletons: compare them with ``is``.
    """

    name: str
    tag: bytes
    hash_len: int
    hash: Callable[[Any], bytes] = field(repr=False)  # a buffer's hash: leaves and nodes
    new: Callable[[], Any] = field(repr=False)  # an incremental hasher for the disk's hash
    # zero leaves take the cached constant (a memcmp) where that is cheaper than hashing them
    # (SHA-256); XXH3 hashes zeros faster than memcmp finds them
    skip_zeros: bool = True

    @property
    def tree(self) -> bool:
        return bool(self.tag)

    def zero_hash(self, length: int) -> bytes:
        """Hash of ``length`` zero bytes, computed once per length so holes cost nothing."""
        return _zero_hash(self, length)

    def leaf_hash(self, data: bytes | bytearray | memoryview, start: int, end: int) -> bytes:
        """Hash of ``data[start:end]``; all-zero leaves (a memcmp) take the cached constant."""
        n = end - start
        if self.skip_zeros and _starts_with_zeros(data, start, n):
            return self.zero_hash(n)
        return self.hash(memoryview(data)[start:end])

    def record(self, data: bytes | bytearray | memoryview, chunk_size: int) -> bytes:
        """What the engine records for one chunk of content ``data``."""
        if not self.tree:
            return self.zero_hash(len(data)) if is_zero(data) else self.hash(data)
        leaf = leaf_size(chunk_size)
        n = len(data)
        if self.skip_zeros:
            hashes = [self.leaf_hash(data, p, min(p + leaf, n)) for p in range(0, n, leaf)]
        else:
            view, h = memoryview(data), self.hash
            hashes = [h(view[p : p + leaf]) for p in range(0, n, leaf)]
        return self.tag + b"".join(hashes)

    def zero_record(self, length: int, chunk_size: int) -> bytes:
        """The record of an all-zero chunk of ``length`` bytes, computed once."""
        return _zero_record(self, length, chunk_size)

    def of_leaves(self, leaves: Iterable[bytes]) -> bytes:
        assert self.tree, "a tree format"
        return self.tag + b"".join(leaves)

    def prefix(self, chunk_size: int) -> str:
        """``xxh3t-4m-64k`` for 4 MiB chunks of 64 KiB leaves (``sha256-4m`` for the oldest,
        flat format); odd sizes (tests) are named in KiB or bytes."""
        if not self.tree:
            return f"{self.name}-{_size_name(chunk_size)}"
        return f"{self.name}-{_size_name(chunk_size)}-{_size_name(leaf_size(chunk_size))}"


LEGACY = DigestFormat("sha256", b"", 32, _sha256, hashlib.sha256)
SHA256T = DigestFormat("sha256t", TREE_TAG, 32, _sha256, hashlib.sha256)
XXH3T = DigestFormat("xxh3t", XXH3_TAG, 16, xxhash.xxh3_128_digest, xxhash.xxh3_128, False)
DEFAULT = XXH3T  # what new copies are recorded in
FORMATS = (XXH3T, SHA256T, LEGACY)


def _starts_with_zeros(data: bytes | bytearray | memoryview, start: int, n: int) -> bool:
    """``data[start:start + n]`` is all zeros: ``startswith`` is a memcmp that stops at the
    first non-zero byte (comparing memoryviews is not: it goes item by item)."""
    if isinstance(data, memoryview):
        return bytes(data[start : start + n]) == zeros(n)
    return data.startswith(zeros(n), start)


@lru_cache(maxsize=64)
def _zero_hash(fmt: DigestFormat, length: int) -> bytes:
    return fmt.hash(zeros(length))


@lru_cache(maxsize=64)
def _zero_record(fmt: DigestFormat, length: int, chunk_size: int) -> bytes:
    if not fmt.tree:
        return fmt.zero_hash(length)
    leaf = leaf_size(chunk_size)
    full, rest = divmod(length, leaf)
    tail = fmt.zero_hash(rest) if rest else b""
    return fmt.tag + fmt.zero_hash(leaf) * full + tail


def record_format(record: bytes) -> DigestFormat:
    """The format a chunk record was made in; ValueError for none we know (never a guess)."""
    if len(record) == LEGACY_LEN:
        return LEGACY
    for fmt in (XXH3T, SHA256T):
        if record[:1] == fmt.tag and len(record) > 1 and (len(record) - 1) % fmt.hash_len == 0:
            return fmt
    raise ValueError(f"a chunk record of {len(record)} bytes in no known format")


def format_of_digest(digest: str) -> DigestFormat:
    """The format a disk digest (``xxh3t-4m-64k:...``) was made in."""
    name = digest.split(":", 1)[0].split("-", 1)[0]
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise ValueError(f"a digest in no known format: {digest[:40]!r}")


def chunk_hash(data: bytes | bytearray | memoryview) -> bytes:
    """Plain sha256 of a buffer (a chunk in the oldest format); hashlib drops the GIL for
    large buffers, so streams run in parallel."""
    return hashlib.sha256(data).digest()


def leaf_size(chunk_size: int) -> int:
    """The tree's leaf size for a chunking: 64 KiB, or the chunk itself for odd sizes (tests)."""
    return LEAF_SIZE if chunk_size % LEAF_SIZE == 0 else chunk_size


def leaf_count(length: int, leaf: int) -> int:
    return (length + leaf - 1) // leaf


def leaf_hash(
    data: bytes | bytearray | memoryview, start: int, end: int, fmt: DigestFormat = DEFAULT
) -> bytes:
    """Hash of ``data[start:end]`` (one leaf); all-zero leaves take the cached constant."""
    return fmt.leaf_hash(data, start, end)


def chunk_record(
    data: bytes | bytearray | memoryview, chunk_size: int, fmt: DigestFormat = DEFAULT
) -> bytes:
    """What the engine records for one chunk of content ``data``: the tree's leaf hashes."""
    return fmt.record(data, chunk_size)


def zero_chunk_record(length: int, chunk_size: int, fmt: DigestFormat = DEFAULT) -> bytes:
    """The record of an all-zero chunk of ``length`` bytes, computed once (holes cost nothing)."""
    return fmt.zero_record(length, chunk_size)


def is_legacy(record: bytes) -> bool:
    """True for a record of the oldest format (one plain sha256 of the chunk)."""
    return len(record) == LEGACY_LEN


def record_leaves(record: bytes) -> list[bytes]:
    """The leaf hashes of a tree record, in order."""
    fmt = record_format(record)
    assert fmt.tree, "a tree record"
    n = fmt.hash_len
    return [record[i : i + n] for i in range(1, len(record), n)]


def record_of_leaves(leaves: Iterable[bytes], fmt: DigestFormat = DEFAULT) -> bytes:
    return fmt.of_leaves(leaves)


def node_hash(record: bytes) -> bytes:
    """The chunk's hash in the disk digest: its tree's root (a flat record is its own hash)."""
    fmt = record_format(record)
    if not fmt.tree:
        return record
    return fmt.hash(memoryview(record)[1:])


@lru_cache(maxsize=64)
def zero_chunk_hash(length: int) -> bytes:
    """SHA-256 of ``length`` zero bytes (the oldest format's zero chunk), computed once."""
    return hashlib.sha256(zeros(length)).digest()


@lru_cache(maxsize=16)
def zeros(length: int) -> bytes:
    """A shared zero buffer: ``data == zeros(len(data))`` is a memcmp, no allocation."""
    return bytes(length)


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when ``data`` is all zero bytes (a memcmp against a cached buffer)."""
    return _starts_with_zeros(data, 0, len(data))


def _size_name(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB}m"
    if n % 1024 == 0:
        return f"{n // 1024}k"
    return f"{n}b"


def digest_prefix(chunk_size: int, legacy: bool = False, fmt: DigestFormat = DEFAULT) -> str:
    """``xxh3t-4m-64k`` for 4 MiB chunks of 64 KiB leaves; ``sha256-4m`` in the oldest, flat
    format (``legacy``).  Odd sizes (tests) are named in KiB or bytes."""
    return (LEGACY if legacy else fmt).prefix(chunk_size)


def combine(chunk_records: Iterable[bytes], chunk_size: int = CHUNK_SIZE) -> str:
    """The disk digest from its chunk records, in chunk order (all of one format)."""
    h: Any = None
    fmt: DigestFormat | None = None
    for rec in chunk_records:
        kind = record_format(rec)
        if fmt is None:
            fmt, h = kind, kind.new()
        elif kind is not fmt:
            raise ValueError("chunk records of two digest formats cannot make one digest")
        h.update(node_hash(rec))
    if fmt is None:
        fmt, h = DEFAULT, DEFAULT.new()
    return f"{fmt.prefix(chunk_size)}:{h.hexdigest()}"


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
    fmt: DigestFormat = DEFAULT,
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
            hashes[idx] = fmt.zero_record(chunk_length(idx, size, chunk_size), chunk_size)
    work = [i for i, f in enumerate(flags) if f]
    for idx, h in chunk_hashes_of_reader(reader, work, size, chunk_size, streams, fmt).items():
        hashes[idx] = h
    return combine(hashes, chunk_size)


def chunk_hashes_of_reader(
    reader: DiskReader,
    indices: Iterable[int],
    size: int,
    chunk_size: int = CHUNK_SIZE,
    streams: int = 4,
    fmt: DigestFormat = DEFAULT,
) -> dict[int, bytes]:
    """Records of some chunks of a reader's first ``size`` bytes in format ``fmt``, read in
    parallel.

    Lets a precopy round verify the chunks it wrote without reading the whole disk again.
    """

    def one(idx: int) -> tuple[int, bytes]:
        n = chunk_length(idx, size, chunk_size)
        data = reader.read(idx * chunk_size, n)
        if len(data) != n:
            raise OSError(f"short read at offset {idx * chunk_size}: {len(data)} of {n} bytes")
        return idx, fmt.record(data, chunk_size)

    streams = max(1, streams)
    out: dict[int, bytes] = {}
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="digest") as pool:
        for idx, h in bounded_map(pool, one, indices, streams * 2):
            out[idx] = h
    return out


def disk_digest_of_file(
    path: str | Path,
    chunk_size: int = CHUNK_SIZE,
    streams: int = 2,
    size: int | None = None,
    fmt: DigestFormat = DEFAULT,
) -> str:
    """Digest of a raw image or block device; holes (SEEK_HOLE) are skipped without reading."""
    from reconciler.transfer.rawfile import RawDiskReader  # targets build on transfer, not back

    reader = RawDiskReader(path)
    try:
        return disk_digest_of_reader(reader, chunk_size, streams, size, fmt)
    finally:
        reader.close()
