"""Copies recorded by an older version (SHA-256 tree records, ``sha256t-...``) are resumed in
their own format after the default became XXH3 (``xxh3t-...``): never misread, never mixed,
and what was durable is not copied again."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.transfer.digest import SHA256T, XXH3T, chunk_record, disk_digest_of_file
from reconciler.transfer.engine import copy_changes, copy_disk
from reconciler.transfer.extents import Extent
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter

KiB = 1024
MiB = 1024 * KiB
CS = 256 * KiB
SIZE = 6 * MiB + 1000


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src.img"
    rng = random.Random(11)
    with open(path, "wb") as f:
        f.truncate(SIZE)
        f.write(rng.randbytes(2 * MiB))
        f.seek(4 * MiB + 3000)
        f.write(rng.randbytes(MiB))
    return path


def as_older_version(db: Path, src: Path, completed: bool) -> list[int]:
    """Rewrite the store's records as the previous version made them (SHA-256 trees and a
    ``sha256t`` digest); returns the chunks recorded."""
    data = src.read_bytes()
    digest = disk_digest_of_file(src, chunk_size=CS, fmt=SHA256T)
    with sqlite3.connect(db) as c:
        rows = [i for (i,) in c.execute("SELECT idx FROM chunks WHERE disk='d' ORDER BY idx")]
        for idx in rows:
            rec = chunk_record(data[idx * CS : (idx + 1) * CS], CS, SHA256T)
            c.execute("UPDATE chunks SET hash=? WHERE disk='d' AND idx=?", (rec, idx))
        if completed:
            c.execute("UPDATE disks SET source_digest=?, target_digest=?", (digest, digest))
            c.execute("UPDATE rounds SET source_digest=?, target_digest=?", (digest, digest))
        else:
            c.execute("UPDATE disks SET source_digest='', target_digest='', completed=''")
    return rows


def test_new_copies_are_recorded_in_xxh3(tmp_path: Path, src: Path, store: ProgressStore) -> None:
    dst = tmp_path / "dst.img"
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w, RawDiskReader(dst) as v:
        res = copy_disk(r, w, store, "d", chunk_size=CS, verify_reader=v)
    assert res.source_digest.startswith("xxh3t-256k-64k:")
    assert res.source_digest == res.target_digest == disk_digest_of_file(src, chunk_size=CS)
    assert {h[:1] for h, _n in store.done_chunks("d").values()} == {XXH3T.tag}


def test_a_copy_begun_by_the_older_version_is_finished_in_its_format(
    tmp_path: Path, src: Path, store: ProgressStore
) -> None:
    """Killed midway under the previous version: the chunks it made durable are kept (their
    SHA-256 records are read as such), the rest is copied and hashed in the same format."""
    dst = tmp_path / "dst.img"
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        copy_disk(r, w, store, "d", chunk_size=CS)
    recorded = as_older_version(tmp_path / "progress.db", src, completed=False)
    lost = recorded[len(recorded) // 2 :]  # as if killed before these were made durable
    with sqlite3.connect(tmp_path / "progress.db") as c:
        c.executemany("DELETE FROM chunks WHERE disk='d' AND idx=?", [(i,) for i in lost])
    with open(dst, "r+b") as f:  # and never written
        for idx in lost:
            f.seek(idx * CS)
            f.write(bytes(min(CS, SIZE - idx * CS)))
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w, RawDiskReader(dst) as v:
        res = copy_disk(r, w, store, "d", chunk_size=CS, verify_reader=v)
    assert res.resumed_chunks == len(recorded) - len(lost) > 0
    assert dst.read_bytes() == src.read_bytes()
    want = disk_digest_of_file(src, chunk_size=CS, fmt=SHA256T)
    assert want.startswith("sha256t-256k-64k:")
    assert res.source_digest == res.target_digest == want
    assert {h[:1] for h, _n in store.done_chunks("d").values()} == {SHA256T.tag}


def test_a_warm_round_keeps_the_older_versions_format(
    tmp_path: Path, src: Path, store: ProgressStore
) -> None:
    """A warm migration whose full copy the previous version made: its rounds re-hash the
    touched leaves with SHA-256 and the digest stays ``sha256t``, equal to a fresh reading."""
    dst = tmp_path / "dst.img"
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        copy_disk(r, w, store, "d", chunk_size=CS, change_id="c0")
    as_older_version(tmp_path / "progress.db", src, completed=True)
    writes = [(100 * KiB, b"w" * 5000), (3 * MiB + 8 * KiB, b"h" * 4096)]  # data, then a hole
    with open(src, "r+b") as f:
        for off, data in writes:
            f.seek(off)
            f.write(data)
    areas = [Extent(0, 108 * KiB, False), Extent(3 * MiB + 8 * KiB, 4 * KiB, False)]
    with (
        RawDiskReader(src) as r,
        RawDiskWriter(dst, SIZE) as w,
        RawDiskReader(dst) as v,
        RawDiskReader(dst) as base,
    ):
        res = copy_changes(
            r, w, store, "d", areas, round=1, chunk_size=CS, verify_reader=v, base_reader=base
        )
    assert dst.read_bytes() == src.read_bytes()
    want = disk_digest_of_file(src, chunk_size=CS, fmt=SHA256T)
    assert res.source_digest == res.target_digest == want
    assert {h[:1] for h, _n in store.done_chunks("d").values()} == {SHA256T.tag}
