"""The chunked digest equals a plain reference computation, however the bytes are stored."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
import xxhash

from reconciler.transfer.digest import (
    CHUNK_SIZE,
    LEGACY,
    SHA256T,
    XXH3T,
    MiB,
    chunk_hash,
    chunk_record,
    combine,
    data_chunk_flags,
    disk_digest_of_file,
    disk_digest_of_reader,
    format_of_digest,
    is_legacy,
    node_hash,
    record_format,
    record_leaves,
    record_of_leaves,
    zero_chunk_hash,
    zero_chunk_record,
)
from reconciler.transfer.extents import Extent
from reconciler.transfer.rawfile import RawDiskReader


def make_image(path: Path, size: int, regions: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in regions:
            f.seek(off)
            f.write(data)


def reference_digest(path: Path, chunk_size: int, prefix: str, leaf: int = 64 * 1024) -> str:
    """Read every byte, hash every leaf, every chunk of leaf hashes, the disk of chunk hashes:
    what the digest means, without any shortcut (XXH3-128 for ``xxh3t``, else SHA-256)."""
    if prefix.startswith("xxh3t-"):
        new, one = xxhash.xxh3_128, xxhash.xxh3_128_digest
    else:
        new, one = hashlib.sha256, lambda b: hashlib.sha256(b).digest()
    outer = new()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            leaves = b"".join(one(chunk[i : i + leaf]) for i in range(0, len(chunk), leaf))
            outer.update(one(leaves))
    return f"{prefix}:{outer.hexdigest()}"


class CountingReader(RawDiskReader):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.offsets: list[int] = []
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self.offsets.append(offset)
        return super().read(offset, length)


def test_chunk_and_zero_hashes() -> None:
    assert chunk_hash(b"abc") == hashlib.sha256(b"abc").digest()
    assert zero_chunk_hash(CHUNK_SIZE) == hashlib.sha256(bytes(CHUNK_SIZE)).digest()
    assert zero_chunk_hash(123) == hashlib.sha256(bytes(123)).digest()
    before = zero_chunk_hash.cache_info().hits
    zero_chunk_hash(CHUNK_SIZE)
    assert zero_chunk_hash.cache_info().hits == before + 1


def test_combine_names_the_chunk_size_and_the_format() -> None:
    x3 = xxhash.xxh3_128_digest
    recs = [chunk_record(b"a", 4 * MiB), chunk_record(b"b", 4 * MiB)]
    assert recs[0] == b"\x02" + x3(b"a")  # the default: XXH3-128 leaves, tagged 2
    want = xxhash.xxh3_128(x3(x3(b"a")) + x3(x3(b"b"))).hexdigest()
    assert combine(recs, 4 * MiB) == f"xxh3t-4m-64k:{want}"
    assert combine(recs, 64 * 1024).startswith("xxh3t-64k-64k:")
    assert combine(recs, 1000).startswith("xxh3t-1000b-1000b:")
    # records of the older SHA-256 tree format (tagged 1) keep their digest and its name
    recs = [chunk_record(b"a", 4 * MiB, SHA256T), chunk_record(b"b", 4 * MiB, SHA256T)]
    nodes = [hashlib.sha256(chunk_hash(b"a")).digest(), hashlib.sha256(chunk_hash(b"b")).digest()]
    want = hashlib.sha256(nodes[0] + nodes[1]).hexdigest()
    assert combine(recs, 4 * MiB) == f"sha256t-4m-64k:{want}"
    assert combine(recs, 64 * 1024).startswith("sha256t-64k-64k:")
    assert combine(recs, 1000).startswith("sha256t-1000b-1000b:")
    # records of the older, flat format (one sha256 per chunk) keep their digest and its name
    hs = [chunk_hash(b"a"), chunk_hash(b"b")]
    legacy = hashlib.sha256(hs[0] + hs[1]).hexdigest()
    assert combine(hs, 4 * MiB) == f"sha256-4m:{legacy}"
    assert combine(hs, 1000).startswith("sha256-1000b:")
    with pytest.raises(ValueError, match="two digest formats"):
        combine([recs[0], hs[1]], 4 * MiB)
    with pytest.raises(ValueError, match="two digest formats"):
        combine([chunk_record(b"a", 4 * MiB), recs[1]], 4 * MiB)
    with pytest.raises(ValueError, match="no known format"):
        combine([b"\x07" + hs[0]], 4 * MiB)
    with pytest.raises(ValueError, match="no known format"):
        combine([b"\x02" + hs[0][:20]], 4 * MiB)


def test_every_record_is_read_in_the_format_it_was_made_in() -> None:
    """The three formats' records never pass for one another, whatever their leaf count."""
    data = os.urandom(300 * 1024)
    for fmt in (XXH3T, SHA256T, LEGACY):
        for n in (1, 1000, 64 * 1024, len(data)):
            rec = chunk_record(data[:n], 4 * MiB, fmt)
            assert record_format(rec) is fmt, (fmt.name, n)
    assert [len(record_leaves(chunk_record(data, 4 * MiB, f))) for f in (XXH3T, SHA256T)] == [5, 5]
    assert node_hash(chunk_record(data, 4 * MiB, LEGACY)) == chunk_hash(data)
    for fmt in (XXH3T, SHA256T):
        rec = chunk_record(data, 4 * MiB, fmt)
        assert record_of_leaves(record_leaves(rec), fmt) == rec
    assert format_of_digest("xxh3t-4m-64k:00") is XXH3T
    assert format_of_digest("sha256t-4m-64k:00") is SHA256T
    assert format_of_digest("sha256-4m:00") is LEGACY
    with pytest.raises(ValueError, match="no known format"):
        format_of_digest("md5-4m:00")


def test_a_chunk_record_is_its_leaf_hashes() -> None:
    data = os.urandom(64 * 1024) + bytes(64 * 1024) + b"tail"
    rec = chunk_record(data, 4 * MiB, SHA256T)
    assert not is_legacy(rec) and len(rec) == 1 + 3 * 32
    assert record_leaves(rec) == [
        chunk_hash(data[:65536]),
        zero_chunk_hash(65536),
        chunk_hash(b"tail"),
    ]
    rec = chunk_record(data, 4 * MiB)
    assert not is_legacy(rec) and len(rec) == 1 + 3 * 16
    x3 = xxhash.xxh3_128_digest
    assert record_leaves(rec) == [x3(data[:65536]), x3(bytes(65536)), x3(b"tail")]
    for fmt in (XXH3T, SHA256T, LEGACY):
        assert zero_chunk_record(CHUNK_SIZE + 7, CHUNK_SIZE * 2, fmt) == chunk_record(
            bytes(CHUNK_SIZE + 7), CHUNK_SIZE * 2, fmt
        )


def test_file_digest_matches_reference_with_holes_and_short_last_chunk(tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE + 12345  # last chunk is short
    img = tmp_path / "a.img"
    make_image(
        img,
        size,
        [(100, os.urandom(5000)), (2 * CHUNK_SIZE + 7, os.urandom(CHUNK_SIZE)), (size - 10, b"z")],
    )
    assert disk_digest_of_file(img) == reference_digest(img, CHUNK_SIZE, "xxh3t-4m-64k")
    assert disk_digest_of_file(img, fmt=SHA256T) == reference_digest(
        img, CHUNK_SIZE, "sha256t-4m-64k"
    )


def test_holes_and_written_zeros_give_the_same_digest(tmp_path: Path) -> None:
    size = 5 * CHUNK_SIZE
    data = os.urandom(70000)
    sparse, dense = tmp_path / "sparse.img", tmp_path / "dense.img"
    make_image(sparse, size, [(CHUNK_SIZE + 5, data)])
    make_image(dense, size, [(0, bytes(size)), (CHUNK_SIZE + 5, data)])
    assert disk_digest_of_file(sparse) == disk_digest_of_file(dense)
    assert disk_digest_of_file(sparse) != disk_digest_of_file(dense, chunk_size=MiB)


def test_holes_are_not_read_and_streams_do_not_matter(tmp_path: Path) -> None:
    cs = 64 * 1024
    size = 40 * cs
    img = tmp_path / "a.img"
    make_image(img, size, [(3 * cs, os.urandom(cs)), (20 * cs + 100, os.urandom(2 * cs))])
    digests = set()
    for streams in (1, 3, 8):
        r = CountingReader(img)
        digests.add(disk_digest_of_reader(r, cs, streams))
        r.close()
        assert sorted(r.offsets) == [3 * cs, 20 * cs, 21 * cs, 22 * cs]
    assert digests == {reference_digest(img, cs, "xxh3t-64k-64k")}


def test_digest_of_a_prefix(tmp_path: Path) -> None:
    """Verifying on a target bigger than the source digests only the source's length."""
    small, big = tmp_path / "small.img", tmp_path / "big.img"
    data = os.urandom(3 * MiB)
    make_image(small, 8 * MiB, [(MiB, data)])
    make_image(big, 16 * MiB, [(MiB, data), (12 * MiB, b"tail")])
    assert disk_digest_of_file(big, size=8 * MiB) == disk_digest_of_file(small)


def test_data_chunk_flags() -> None:
    cs = 10
    ext = [Extent(0, 25, True), Extent(25, 1, False), Extent(26, 34, True)]
    assert list(data_chunk_flags(ext, 60, cs)) == [0, 0, 1, 0, 0, 0]
    # a gap no extent describes is read like data
    assert list(data_chunk_flags([Extent(0, 20, True), Extent(35, 25, True)], 60, cs)) == [
        0,
        0,
        1,
        1,
        0,
        0,
    ]
    assert list(data_chunk_flags([], 25, cs)) == [1, 1, 1]
