"""copy_changes: warm precopy rounds copy only what changed, exactly, and resume mid-round."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.transfer.digest import disk_digest_of_file
from reconciler.transfer.engine import (
    CopyProgress,
    CopyResult,
    DigestMismatch,
    TransferCanceled,
    TransferError,
    chunk_ranges,
    copy_changes,
    copy_disk,
    merge_areas,
)
from reconciler.transfer.extents import Extent
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter, allocated_bytes

KiB = 1024
MiB = 1024 * KiB
CS = 256 * KiB  # small chunks: many of them in a small disk
SIZE = 8 * MiB + 1000  # a short last chunk
HOLE = range(2 * MiB, 5 * MiB)  # never written by the base image: blank on the target
LEAF = 64 * KiB  # the digest tree's leaves


class LoggingReader(RawDiskReader):
    """Logs every read; optionally fails, or sets an event, after some reads."""

    def __init__(
        self,
        path: Path,
        fail_after: int | None = None,
        cancel_after: tuple[int, threading.Event] | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(path)
        self.reads: list[tuple[int, int]] = []
        self.fail_after = fail_after
        self.cancel_after = cancel_after
        self.delay = delay
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            if self.fail_after is not None and len(self.reads) >= self.fail_after:
                raise OSError(5, "simulated source failure")
            self.reads.append((offset, length))
            if self.cancel_after is not None and len(self.reads) >= self.cancel_after[0]:
                self.cancel_after[1].set()
        if self.delay:
            time.sleep(self.delay)
        return super().read(offset, length)

    def chunks(self) -> list[int]:
        return sorted(o // CS for o, _ in self.reads)


class LoggingWriter(RawDiskWriter):
    def __init__(self, path: Path, size: int, *, fail_flush: bool = False) -> None:
        super().__init__(path, size)
        self.writes: list[tuple[int, bytes]] = []
        self.fail_flush = fail_flush
        self._lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            self.writes.append((offset, bytes(data)))
        super().write(offset, data)

    def flush(self) -> None:
        if self.fail_flush:
            raise OSError(5, "simulated target failure")
        super().flush()


@pytest.fixture
def disks(tmp_path: Path, store: ProgressStore) -> tuple[Path, Path]:
    """A source image and its full copy (round 0, change id c0) on a sparse target."""
    src, dst = tmp_path / "src.img", tmp_path / "dst.img"
    rng = random.Random(7)
    with open(src, "wb") as f:
        f.truncate(SIZE)
        f.write(rng.randbytes(2 * MiB))
        f.seek(5 * MiB + 3000)
        f.write(rng.randbytes(MiB + 500 * KiB))
        f.seek(SIZE - 10)
        f.write(b"last bytes")
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        copy_disk(r, w, store, "d", chunk_size=CS, change_id="c0")
    assert dst.read_bytes() == src.read_bytes()
    return src, dst


def guest_writes(path: Path, writes: list[tuple[int, bytes]]) -> list[Extent]:
    """Apply a guest's writes to the source; the changed areas as CBT reports them: rounded
    out to 4 KiB blocks, unsorted, overlapping where the writes did."""
    with open(path, "r+b") as f:
        for off, data in writes:
            f.seek(off)
            f.write(data)
    areas = []
    for off, data in reversed(writes):
        start = off // (4 * KiB) * (4 * KiB)
        end = min(SIZE, -(-(off + len(data)) // (4 * KiB)) * (4 * KiB))
        areas.append(Extent(start, end - start, False))
    return areas


def merge_areas_ext(areas: list[Extent]) -> list[Extent]:
    return [Extent(a, b - a, False) for a, b in merge_areas(areas, SIZE)]


def touched(areas: list[Extent]) -> set[int]:
    return {i for e in areas for i in range(e.start // CS, (e.end - 1) // CS + 1)}


def run_round(
    src: Path,
    dst: Path,
    store: ProgressStore,
    areas: list[Extent],
    round_no: int,
    **kw: object,
) -> tuple[CopyResult, LoggingReader, LoggingWriter, LoggingReader]:
    reader = LoggingReader(src)
    writer = LoggingWriter(dst, SIZE)
    verify = LoggingReader(dst)
    try:
        res = copy_changes(
            reader,
            writer,
            store,
            "d",
            areas,
            round=round_no,
            change_id=f"c{round_no}",
            chunk_size=CS,
            verify_reader=verify,
            **kw,
        )
    finally:
        for c in (reader, writer, verify):
            c.close()
    return res, reader, writer, verify


def round_writes(rng: random.Random, k: int) -> list[tuple[int, bytes]]:
    """Random writes, plus the cases that matter: a block zeroed where data was, writes
    straddling chunk boundaries, a small write into a blank area, the short last chunk."""
    writes = [
        (off := rng.randrange(0, SIZE - 300 * KiB), rng.randbytes(rng.randrange(1, 300 * KiB)))
        for _ in range(5)
    ]
    writes += [
        (CS * (1 + k) + 64 * KiB, bytes(128 * KiB)),  # the guest zeroed a block of data
        (CS * (27 + k) - 1000, rng.randbytes(2000)),  # across a chunk boundary
        (CS * (5 + k) - 77, rng.randbytes(CS + 300)),  # across two boundaries
        (HOLE.start + CS * (2 * k) + 70_000, rng.randbytes(5000)),  # into a blank area
        (SIZE - 600, rng.randbytes(600)),  # the short last chunk
    ]
    assert off >= 0
    return writes


def test_three_rounds_copy_only_what_changed_and_keep_the_target_exact(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    src, dst = disks
    rng = random.Random(42)
    digests = set()
    for k in (1, 2, 3):
        before = dst.read_bytes()
        areas = guest_writes(src, round_writes(rng, k))
        base = LoggingReader(dst)
        try:
            res, reader, writer, verify = run_round(src, dst, store, areas, k, base_reader=base)
        finally:
            base.close()

        assert dst.read_bytes() == src.read_bytes()
        full = disk_digest_of_file(src, chunk_size=CS)
        assert res.source_digest == res.target_digest == full
        digests.add(full)
        assert (res.round, res.chunks_touched, res.resumed_chunks) == (k, len(touched(areas)), 0)
        # read from the source: exactly the changed ranges, chunk by chunk; the rest of a
        # touched chunk that held data comes from the target, whole; verify re-reads each
        ranges = chunk_ranges(merge_areas(areas, SIZE), SIZE, CS)
        want = sorted((c * CS + a, b - a) for c, rs in ranges.items() for a, b in rs)
        assert sorted(reader.reads) == want
        assert sum(n for _, n in reader.reads) == sum(e.length for e in merge_areas_ext(areas))
        # the rest of a touched 64 KiB leaf that held data comes from the target, leaf by
        # leaf; a leaf that was blank is not read; verify re-reads each touched leaf once
        merged = merge_areas(areas, SIZE)
        leaves = sorted({k for a, b in merged for k in range(a // LEAF, (b - 1) // LEAF + 1)})
        partial = [
            k
            for k in leaves
            if not any(a <= k * LEAF and min(SIZE, (k + 1) * LEAF) <= b for a, b in merged)
        ]
        held = [k for k in partial if any(before[k * LEAF : (k + 1) * LEAF])]
        assert sorted(base.reads) == [(k * LEAF, min(LEAF, SIZE - k * LEAF)) for k in held]
        assert sorted(verify.reads) == [(k * LEAF, min(LEAF, SIZE - k * LEAF)) for k in leaves]
        # written: exactly the changed areas where the leaf held data (zeros included), and
        # only their non-zero 4 KiB blocks where it read as zeros; never more
        after = src.read_bytes()
        want = bytearray(SIZE)
        for a, b in merged:
            for pos in range(a, b, 4 * KiB):
                end = min(b, pos + 4 * KiB)
                lf = pos // LEAF * LEAF
                if any(before[lf : lf + LEAF]) or any(after[pos:end]):
                    want[pos:end] = b"\x01" * (end - pos)
        got = bytearray(SIZE)
        for o, d in writer.writes:
            assert not any(got[o : o + len(d)]), "a byte written twice"
            got[o : o + len(d)] = b"\x01" * len(d)
        assert got == want
        assert all((o + len(d) - 1) // CS == o // CS for o, d in writer.writes)
        assert res.bytes_written == sum(len(d) for _, d in writer.writes) == want.count(1) > 0
        assert res.bytes_written <= sum(b - a for a, b in merged)
        # the zeroed block reached the target as written zeros, not as a skipped hole
        zeroed = CS * (1 + k) + 64 * KiB
        assert before[zeroed : zeroed + 128 * KiB] != bytes(128 * KiB)
        assert any(o <= zeroed and zeroed + 128 * KiB <= o + len(d) for o, d in writer.writes)
        # a small write into a blank area is written as its 4 KiB blocks, the rest stays a hole
        blank = (HOLE.start + CS * (2 * k) + 70_000) // CS
        assert sum(len(d) for o, d in writer.writes if o // CS == blank) <= 3 * 4 * KiB

        last = store.last_round("d")
        assert last is not None and (last.round, last.change_id) == (k, f"c{k}")
        assert last.completed and last.source_digest == full and last.chunks == res.chunks_touched
        disk = store.get_disk("d")
        assert disk is not None and disk.completed and disk.source_digest == full
    assert len(digests) == 3
    assert allocated_bytes(dst) < allocated_bytes(src) + 4 * CS  # still sparse
    assert [r.change_id for r in store.rounds("d")] == ["c0", "c1", "c2", "c3"]
    # the finished disk answers a full copy at once, with the last round's digest
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        again = copy_disk(r, w, store, "d", chunk_size=CS)
    assert again.source_digest == full and again.bytes_written == 0


def test_zeros_written_into_blank_space_stay_holes(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    """A guest zero-filling free space (sdelete, dd) changes areas the target never held data
    in: they read as zeros already, writing them would only allocate the thin target."""
    src, dst = disks
    allocated = allocated_bytes(dst)
    fill = range(HOLE.start + CS, HOLE.start + 5 * CS)
    areas = guest_writes(src, [(fill.start, bytes(len(fill))), (fill.stop + 100, b"data")])
    res, reader, writer, _v = run_round(src, dst, store, areas, 1)
    assert set(reader.chunks()) == touched(areas)
    assert [o // CS for o, _ in writer.writes] == [fill.stop // CS]
    assert res.bytes_written == 4 * KiB  # the changed 4 KiB block, not a 64 KiB piece
    assert allocated_bytes(dst) <= allocated + 4 * KiB
    assert dst.read_bytes() == src.read_bytes()


def test_an_empty_change_list_changes_nothing(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    src, dst = disks
    before = store.get_disk("d").source_digest
    reader = LoggingReader(src, fail_after=0)  # any read would raise
    writer = LoggingWriter(dst, SIZE)
    res = copy_changes(reader, writer, store, "d", [], round=1, change_id="c1", chunk_size=CS)
    assert res.source_digest == before == disk_digest_of_file(src, chunk_size=CS)
    assert (res.bytes_written, res.chunks_touched, res.round) == (0, 0, 1)
    assert reader.reads == [] and writer.writes == []
    last = store.last_round("d")
    assert last is not None and last.completed and last.change_id == "c1"


def test_a_round_killed_midway_resumes_with_only_the_rest(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    src, dst = disks
    rng = random.Random(5)
    areas = guest_writes(src, [(i * CS + rng.randrange(CS), rng.randbytes(999)) for i in range(20)])
    failing = LoggingReader(src, fail_after=6)
    with pytest.raises(TransferError, match="simulated source failure"):
        copy_changes(
            failing, RawDiskWriter(dst, SIZE), store, "d", areas, round=1, chunk_size=CS, streams=2
        )
    done = {i for i, c in store.round_chunks("d").items() if c.done}
    assert 0 < len(done) <= 6
    assert not store.get_disk("d").completed and not store.last_round("d").completed
    with RawDiskReader(src) as r, pytest.raises(TransferError, match="round 1 is unfinished"):
        copy_disk(r, RawDiskWriter(dst, SIZE), store, "d", chunk_size=CS)

    res, reader, _writer, verify = run_round(src, dst, store, areas, 1, streams=2)
    assert set(reader.chunks()) == touched(areas) - done
    assert len(reader.reads) == len(touched(areas)) - len(done)
    assert res.resumed_chunks == len(done) and res.chunks_touched == len(touched(areas))
    assert verify.chunks() == sorted(touched(areas))  # the whole round is verified
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == disk_digest_of_file(src, chunk_size=CS)
    again = LoggingReader(src, fail_after=0)  # a completed round answers without reading
    out = copy_changes(again, RawDiskWriter(dst, SIZE), store, "d", areas, round=1, chunk_size=CS)
    assert out.source_digest == res.source_digest and out.bytes_written == 0


def test_a_canceled_round_resumes(disks: tuple[Path, Path], store: ProgressStore) -> None:
    src, dst = disks
    rng = random.Random(6)
    areas = guest_writes(src, [(i * CS + 100, rng.randbytes(CS)) for i in range(0, 30, 2)])
    cancel = threading.Event()
    r = LoggingReader(src, cancel_after=(3, cancel), delay=0.01)
    with pytest.raises(TransferCanceled):
        copy_changes(
            r, RawDiskWriter(dst, SIZE), store, "d", areas, round=1, chunk_size=CS, cancel=cancel
        )
    done = {i for i, c in store.round_chunks("d").items() if c.done}
    assert done and len(r.reads) < len(touched(areas))
    seen: list[CopyProgress] = []
    res, reader, _w, _v = run_round(src, dst, store, areas, 1, on_progress=seen.append)
    assert set(reader.chunks()) == touched(areas) - done
    assert res.resumed_chunks == len(done)
    assert dst.read_bytes() == src.read_bytes()
    total = sum(min(CS, SIZE - i * CS) for i in touched(areas))
    assert seen[-1].total == seen[-1].bytes_done == total  # progress counts the round's chunks
    assert seen[0].resumed_bytes == sum(min(CS, SIZE - i * CS) for i in done)


def test_an_abandoned_round_is_carried_into_the_next(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    """Round 1 writes the target but never makes it durable (its flush fails), then is given
    up.  Round 2 only lists what changed after round 1's snapshot, and the guest zeroed again
    the data round 1 half-wrote into a blank area: carried-over chunks are written whole."""
    src, dst = disks
    blank = HOLE.start + 3 * CS + 1000
    areas1 = guest_writes(src, [(blank, b"x" * 5000), (CS + 10, b"y" * 100)])
    with RawDiskReader(src) as r, pytest.raises(TransferError, match="durable"):
        copy_changes(
            r, LoggingWriter(dst, SIZE, fail_flush=True), store, "d", areas1, round=1, chunk_size=CS
        )
    assert dst.read_bytes()[blank : blank + 5000] == b"x" * 5000  # written, not recorded
    assert not any(c.done for c in store.round_chunks("d").values())

    areas2 = guest_writes(src, [(blank, bytes(5000)), (6 * CS, b"z" * 10)])
    res, reader, writer, _v = run_round(src, dst, store, areas2, 2)
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == disk_digest_of_file(src, chunk_size=CS)
    assert res.chunks_touched == len(touched(areas1) | touched(areas2))
    assert set(reader.chunks()) == touched(areas1) | touched(areas2)
    assert (CS, CS) in [(o, len(d)) for o, d in writer.writes]  # chunk 1 rewritten whole
    assert [r.round for r in store.rounds("d")] == [0, 1, 2]
    assert not store.rounds("d")[1].completed


def test_a_round_checks_what_it_is_given(disks: tuple[Path, Path], store: ProgressStore) -> None:
    src, dst = disks
    areas = guest_writes(src, [(100, b"a")])

    def go(changed: list[Extent], round_no: int, **kw: object) -> CopyResult:
        with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
            return copy_changes(r, w, store, kw.pop("disk", "d"), changed, round=round_no, **kw)

    with pytest.raises(TransferError, match="no full copy"):
        go(areas, 1, disk="other", chunk_size=CS)
    with pytest.raises(TransferError, match="chunks"):
        go(areas, 1)  # the full copy used 256 KiB chunks, not the default
    with pytest.raises(TransferError, match="outside"):
        go([Extent(SIZE - 10, 20, False)], 1, chunk_size=CS)
    with pytest.raises(TransferError, match="numbered from 1"):
        go(areas, 0, chunk_size=CS)
    go(areas, 2, chunk_size=CS)
    with pytest.raises(TransferError, match="older than round 2"):
        go(areas, 1, chunk_size=CS)
    with pytest.raises(TransferError, match="other changed areas"):
        go([Extent(0, 4096, False), Extent(CS, 1, False)], 2, chunk_size=CS)


def test_verify_finds_a_round_written_wrong(disks: tuple[Path, Path], store: ProgressStore) -> None:
    class Corrupting(RawDiskWriter):
        def write(self, offset: int, data: bytes) -> None:
            super().write(offset, data[:-1] + bytes([data[-1] ^ 1]))

    src, dst = disks
    areas = guest_writes(src, [(7 * CS + 5, b"q" * 50)])
    with (
        RawDiskReader(src) as r,
        RawDiskReader(dst) as v,
        pytest.raises(DigestMismatch, match="1 of the round's chunks") as err,
    ):
        w = Corrupting(dst, SIZE)
        copy_changes(r, w, store, "d", areas, round=1, chunk_size=CS, verify_reader=v)
    assert err.value.offset == 7 * CS
    assert not store.last_round("d").completed and not store.get_disk("d").completed


def test_areas_are_merged_and_cut_at_chunks() -> None:
    areas = merge_areas(
        [Extent(50, 10, False), Extent(0, 20, True), Extent(15, 10, False), Extent(9, 0, False)],
        1000,
    )
    assert areas == [(0, 25), (50, 60)]
    assert chunk_ranges([(90, 250), (260, 270)], 1000, 100) == {
        0: [(90, 100)],
        1: [(0, 100)],
        2: [(0, 50), (60, 70)],
    }
    assert chunk_ranges([(950, 1000)], 1000, 300) == {3: [(50, 100)]}


# -- kill -9 in the middle of a round ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    from reconciler.progress.store import ProgressStore
    from reconciler.transfer.extents import Extent
    from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter
    from reconciler.transfer.engine import copy_changes

    class Gate(RawDiskReader):
        # Reads 20 chunks, then blocks for good: the copy cannot end before the kill.

        def __init__(self, path):
            super().__init__(path)
            self.left, self.lock = 20, threading.Lock()

        def read(self, offset, length):
            with self.lock:
                self.left -= 1
                blocked = self.left < 0
            if blocked:
                threading.Event().wait()
            return super().read(offset, length)

    src, dst, db, areas, cs = sys.argv[1:6]
    areas = [Extent(s, n, False) for s, n in json.loads(areas)]
    r = Gate(src)
    copy_changes(r, RawDiskWriter(dst, r.size), ProgressStore(Path(db)), "d", areas, round=1,
                 chunk_size=int(cs), streams=2)
    print("finished")
    """
)


@pytest.mark.integration
def test_kill_9_in_a_round_then_resume(
    tmp_path: Path, disks: tuple[Path, Path], store: ProgressStore
) -> None:
    src, dst = disks
    rng = random.Random(9)
    areas = guest_writes(src, [(i * CS + 7, rng.randbytes(CS)) for i in range(32)])
    spec = json.dumps([[e.start, e.length] for e in areas])
    db = tmp_path / "progress.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(src), str(dst), str(db), spec, str(CS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    done = 0
    deadline = time.monotonic() + 120  # a safety net: the child cannot finish on its own
    try:
        while time.monotonic() < deadline and child.poll() is None and done < 5:
            time.sleep(0.05)
            if not db.exists():
                continue  # the child has not started its store yet
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    query = "SELECT count(*) FROM round_chunks WHERE done=1"
                    done = c.execute(query).fetchone()[0]
            except sqlite3.OperationalError:
                continue  # schema not created yet
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    recorded = {i for i, c in store.round_chunks("d").items() if c.done}
    assert 5 <= len(recorded) < len(touched(areas))
    res, reader, _w, _v = run_round(src, dst, store, areas, 1, streams=2)
    assert set(reader.chunks()) == touched(areas) - recorded
    assert res.resumed_chunks == len(recorded)
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == res.target_digest == disk_digest_of_file(src, chunk_size=CS)


def test_cutover_copies_what_the_guest_wrote_not_whole_pieces(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    """The warm demo's figure (issue 20): the guest writes 8 KiB into blank space and 4 KiB
    over data after the last round; the final delta wrote 69,632 bytes (a 64 KiB piece for the
    8 KiB).  It copies exactly the changed 4 KiB blocks: 12,288 bytes."""
    src, dst = disks
    rng = random.Random(20)
    writes = [(HOLE.start + CS + 12 * KiB, rng.randbytes(8 * KiB)), (MiB, rng.randbytes(4 * KiB))]
    areas = guest_writes(src, writes)
    base = LoggingReader(dst)
    try:
        res, _r, writer, _v = run_round(src, dst, store, areas, 1, base_reader=base)
    finally:
        base.close()
    assert res.bytes_written == 12_288 == sum(len(d) for _, d in writer.writes)
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == res.target_digest == disk_digest_of_file(src, chunk_size=CS)


def legacy_digest(path: Path) -> str:
    """The older, flat format: one sha256 per chunk."""
    outer = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CS):
            outer.update(hashlib.sha256(chunk).digest())
    return f"sha256-256k:{outer.hexdigest()}"


def make_legacy(store: ProgressStore, db: Path, src: Path) -> None:
    """Rewrite the store's chunk records as an older version recorded them (plain sha256)."""
    data = src.read_bytes()
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT idx FROM chunks WHERE disk='d'").fetchall()
        for (idx,) in rows:
            h = hashlib.sha256(data[idx * CS : (idx + 1) * CS]).digest()
            c.execute("UPDATE chunks SET hash=? WHERE disk='d' AND idx=?", (h, idx))
        c.execute("UPDATE disks SET source_digest=?, target_digest=?", (legacy_digest(src),) * 2)


def test_a_disk_recorded_in_the_older_format_keeps_it_through_rounds(
    tmp_path: Path, disks: tuple[Path, Path], store: ProgressStore
) -> None:
    """A warm migration begun by an older version: its records are plain chunk hashes.  A
    round reads them as such (whole touched chunks, the flat digest), never as leaf lists."""
    src, dst = disks
    make_legacy(store, tmp_path / "progress.db", src)
    rng = random.Random(21)
    areas = guest_writes(src, round_writes(rng, 1))
    base = LoggingReader(dst)
    try:
        res, _r, _w, verify = run_round(src, dst, store, areas, 1, base_reader=base)
    finally:
        base.close()
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == res.target_digest == legacy_digest(src)
    assert verify.chunks() == sorted(touched(areas))  # whole chunks, as the old format needs


def test_a_full_copy_resumed_over_older_records_recopies_them(
    tmp_path: Path, store: ProgressStore
) -> None:
    src, dst = tmp_path / "s.img", tmp_path / "t.img"
    with open(src, "wb") as f:
        f.write(random.Random(3).randbytes(SIZE))
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        copy_disk(r, w, store, "d", chunk_size=CS)
    make_legacy(store, tmp_path / "progress.db", src)
    with sqlite3.connect(tmp_path / "progress.db") as c:  # as if killed before it finished
        c.execute("UPDATE disks SET completed=''")
    with RawDiskReader(src) as r, RawDiskWriter(dst, SIZE) as w:
        res = copy_disk(r, w, store, "d", chunk_size=CS, verify_reader=RawDiskReader(dst))
    assert res.resumed_chunks == 0  # never misread as leaf lists, never trusted: recopied
    assert res.source_digest == res.target_digest == disk_digest_of_file(src, chunk_size=CS)


def test_a_source_of_512_byte_blocks_is_copied_at_its_own_block_size(
    disks: tuple[Path, Path], store: ProgressStore
) -> None:
    """Changed areas are never rounded to our chunk or leaf: a source that reports 512-byte
    blocks (its reader's ``block_size``) gets 512 bytes copied for a 512-byte write."""

    class Sectors(LoggingReader):
        block_size = 512

    src, dst = disks
    at = HOLE.start + CS + 3 * 512
    with open(src, "r+b") as f:
        f.seek(at)
        f.write(b"s" * 512)
    with Sectors(src) as r, RawDiskWriter(dst, SIZE) as w, RawDiskReader(dst) as v:
        res = copy_changes(
            r,
            w,
            store,
            "d",
            [Extent(at - 512, 2048, False)],
            round=1,
            chunk_size=CS,
            verify_reader=v,
        )
    assert res.bytes_written == 512
    assert dst.read_bytes() == src.read_bytes()
    assert res.source_digest == res.target_digest == disk_digest_of_file(src, chunk_size=CS)
