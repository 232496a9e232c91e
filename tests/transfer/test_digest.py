"""The chunked digest equals a plain reference computation, however the bytes are stored."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from reconciler.transfer.digest import (
    CHUNK_SIZE,
    MiB,
    chunk_hash,
    combine,
    data_chunk_flags,
    disk_digest_of_file,
    disk_digest_of_reader,
    zero_chunk_hash,
)
from reconciler.transfer.extents import Extent
from reconciler.transfer.rawfile import RawDiskReader


def make_image(path: Path, size: int, regions: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in regions:
            f.seek(off)
            f.write(data)


def reference_digest(path: Path, chunk_size: int, prefix: str) -> str:
    """Read every byte, hash every chunk: what the digest means, without any shortcut."""
    outer = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            outer.update(hashlib.sha256(chunk).digest())
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


def test_combine_names_the_chunk_size() -> None:
    hs = [chunk_hash(b"a"), chunk_hash(b"b")]
    want = hashlib.sha256(hs[0] + hs[1]).hexdigest()
    assert combine(hs, 4 * MiB) == f"sha256-4m:{want}"
    assert combine(hs, 64 * 1024).startswith("sha256-64k:")
    assert combine(hs, 1000).startswith("sha256-1000b:")


def test_file_digest_matches_reference_with_holes_and_short_last_chunk(tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE + 12345  # last chunk is short
    img = tmp_path / "a.img"
    make_image(
        img,
        size,
        [(100, os.urandom(5000)), (2 * CHUNK_SIZE + 7, os.urandom(CHUNK_SIZE)), (size - 10, b"z")],
    )
    assert disk_digest_of_file(img) == reference_digest(img, CHUNK_SIZE, "sha256-4m")


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
    assert digests == {reference_digest(img, cs, "sha256-64k")}


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
