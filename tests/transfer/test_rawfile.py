"""Raw images: sparse creation, SEEK_DATA extents, positional reads and writes."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter, allocated_bytes

MiB = 1024 * 1024


def test_writer_creates_a_sparse_file_and_never_shrinks(tmp_path: Path) -> None:
    p = tmp_path / "d.img"
    w = RawDiskWriter(p, 1024 * MiB)
    w.write(5 * MiB, b"x" * 4096)
    w.flush()
    w.close()
    assert p.stat().st_size == 1024 * MiB
    assert allocated_bytes(p) < 2 * MiB

    with RawDiskWriter(p, 10 * MiB) as w2:  # an existing bigger file keeps its size and data
        assert w2.size == 10 * MiB
    assert p.stat().st_size == 1024 * MiB
    with open(p, "rb") as f:
        f.seek(5 * MiB)
        assert f.read(4096) == b"x" * 4096

    with RawDiskWriter(p, 2048 * MiB):  # a smaller one grows
        pass
    assert p.stat().st_size == 2048 * MiB


def test_writer_refuses_writes_outside_the_disk(tmp_path: Path) -> None:
    with RawDiskWriter(tmp_path / "d.img", MiB) as w:
        with pytest.raises(ValueError):
            w.write(MiB - 1, b"ab")
        w.write(MiB - 2, b"ab")


def test_reader_extents_follow_holes(tmp_path: Path) -> None:
    p = tmp_path / "d.img"
    with RawDiskWriter(p, 64 * MiB) as w:
        w.write(8 * MiB, os.urandom(MiB))
        w.write(40 * MiB, os.urandom(2 * MiB))
    with RawDiskReader(p) as r:
        assert r.size == 64 * MiB
        ext = list(r.extents())
    # contiguous cover of the whole disk
    assert ext[0].start == 0 and ext[-1].end == 64 * MiB
    assert all(a.end == b.start for a, b in zip(ext, ext[1:], strict=False))
    data = [(e.start, e.length) for e in ext if not e.zero]
    assert data == [(8 * MiB, MiB), (40 * MiB, 2 * MiB)]


def test_reader_extents_of_empty_and_full_files(tmp_path: Path) -> None:
    hole = tmp_path / "hole.img"
    with open(hole, "wb") as f:
        f.truncate(10 * MiB)
    with RawDiskReader(hole) as r:
        assert [(e.start, e.length, e.zero) for e in r.extents()] == [(0, 10 * MiB, True)]
    full = tmp_path / "full.img"
    full.write_bytes(b"a" * 10000)
    with RawDiskReader(full) as r:
        assert [(e.start, e.length, e.zero) for e in r.extents()] == [(0, 10000, False)]


def test_reads_are_exact_short_at_end_and_thread_safe(tmp_path: Path) -> None:
    p = tmp_path / "d.img"
    content = os.urandom(3 * MiB + 17)
    p.write_bytes(content)
    with RawDiskReader(p) as r:
        assert r.read(3 * MiB, 100) == content[3 * MiB :]
        assert r.read(len(content), 10) == b""
        offsets = [i * 65536 + (i % 7) for i in range(48)]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda o: r.read(o, 65536), offsets))
    assert got == [content[o : o + 65536] for o in offsets]


def test_writer_on_an_existing_device_like_file_that_is_too_small(tmp_path: Path) -> None:
    """A character device cannot grow: refusing beats writing past its end."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with pytest.raises(OSError):
        RawDiskWriter("/dev/zero", MiB)


def test_mapped_views_equal_reads_anywhere_and_end_with_the_file(tmp_path: Path) -> None:
    """What the engine hashes to verify a chunk (the target's pages, not a copy) is what
    ``read`` returns: at page-unaligned offsets, over holes, short at the end of the disk."""
    path = tmp_path / "t.img"
    size = 3 * 1024 * 1024 + 777
    w = RawDiskWriter(path, size)
    data = os.urandom(300_000)
    w.write(5000, data)
    w.write(size - 10, b"0123456789")
    w.close()
    with RawDiskReader(path) as r:
        spans = [(0, 1 << 20), (4999, 300_002), (123_457, 65_536), (size - 100, 4096)]
        for offset, length in spans:
            with r.mapped(offset, length) as view:
                assert bytes(view) == r.read(offset, length)
        with r.mapped(size, 10) as view:
            assert len(view) == 0
        with r.mapped(4999, 2) as view:
            assert bytes(view) == b"\0" + data[:1]
    # every mapping was released: the reader closed without "exported pointers exist"
