"""copy_disk: exact, sparse, resumable (even after kill -9), cancelable, verified."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.transfer.digest import disk_digest_of_file
from reconciler.transfer.engine import (
    CopyProgress,
    StreamBudget,
    TransferCanceled,
    TransferError,
    copy_disk,
    nonzero_runs,
)
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter, allocated_bytes

MiB = 1024 * 1024
CS = 256 * 1024  # small chunks keep the tests fast and the chunk counts interesting


def make_image(path: Path, size: int, regions: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in regions:
            f.seek(off)
            f.write(data)


class CountingReader(RawDiskReader):
    """Records every read offset; optionally fails or sets an event after some reads."""

    def __init__(
        self,
        path: Path,
        fail_after: int | None = None,
        cancel_after: tuple[int, threading.Event] | None = None,
        delay: float = 0.0,
    ) -> None:
        super().__init__(path)
        self.offsets: list[int] = []
        self.fail_after = fail_after
        self.cancel_after = cancel_after
        self.delay = delay
        self._lock = threading.Lock()

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            n = len(self.offsets)
            if self.fail_after is not None and n >= self.fail_after:
                raise OSError(5, "simulated source failure")
            self.offsets.append(offset)
            if self.cancel_after is not None and n + 1 >= self.cancel_after[0]:
                self.cancel_after[1].set()
        if self.delay:
            time.sleep(self.delay)
        return super().read(offset, length)


class RecordingWriter(RawDiskWriter):
    def __init__(self, path: Path, size: int, corrupt_at: int | None = None) -> None:
        super().__init__(path, size)
        self.writes: list[tuple[int, int]] = []
        self.flushes = 0
        self.corrupt_at = corrupt_at
        self._lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        with self._lock:
            self.writes.append((offset, len(data)))
        if self.corrupt_at is not None and offset <= self.corrupt_at < offset + len(data):
            buf = bytearray(data)
            buf[self.corrupt_at - offset] ^= 0xFF
            data = bytes(buf)
        super().write(offset, data)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class FailingWriter(RawDiskWriter):
    def __init__(self, path: Path, size: int, fail_offset: int) -> None:
        super().__init__(path, size)
        self.fail_offset = fail_offset

    def write(self, offset: int, data: bytes) -> None:
        if offset == self.fail_offset:
            raise OSError(28, "No space left on device")
        super().write(offset, data)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """64 MiB disk: data regions not aligned to chunks, an explicitly written zero range."""
    p = tmp_path / "src.img"
    make_image(
        p,
        64 * MiB + 1000,  # short last chunk
        [
            (3 * CS + 100, os.urandom(5 * CS)),
            (20 * CS, bytes(2 * CS)),  # allocated, but zeros
            (22 * CS, os.urandom(CS)),
            (40 * MiB, os.urandom(3 * MiB + 77)),
            (64 * MiB + 900, b"end!"),
        ],
    )
    return p


def data_chunks(path: Path) -> set[int]:
    with RawDiskReader(path) as r:
        out: set[int] = set()
        for e in r.extents():
            if not e.zero:
                out.update(range(e.start // CS, (e.end - 1) // CS + 1))
        return out


def test_copy_is_exact_sparse_and_verified(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    reader = CountingReader(source)
    writer = RecordingWriter(dst, reader.size)
    with RawDiskReader(dst) as verify:
        res = copy_disk(reader, writer, store, "vm-1/disk-0", chunk_size=CS, verify_reader=verify)
    writer.close()
    assert dst.read_bytes() == source.read_bytes()
    assert res.source_digest == res.target_digest == disk_digest_of_file(source, chunk_size=CS)
    assert res.resumed_chunks == 0 and res.chunks_total == (reader.size + CS - 1) // CS
    # only chunks touching data were read; zero extents cost nothing
    assert {o // CS for o in reader.offsets} == data_chunks(source)
    # the allocated-but-zero chunks inside a data extent were read, not written
    written = {o // CS for o, _ in writer.writes}
    assert {20, 21} <= data_chunks(source) and not {20, 21} & written
    assert res.bytes_written == sum(n for _, n in writer.writes)
    # sparse: the target holds about the written data, far less than the virtual size
    assert allocated_bytes(dst) <= res.bytes_written + MiB
    assert allocated_bytes(dst) <= allocated_bytes(source) - 2 * CS + 256 * 1024
    rec = store.get_disk("vm-1/disk-0")
    assert rec is not None and rec.completed and rec.target_digest == res.source_digest


def test_nonzero_runs_leave_zero_pieces_out() -> None:
    b = 64 * 1024
    data = bytes(b) + b"x" + bytes(3 * b - 1) + b"y" * b + bytes(100)
    assert nonzero_runs(data, b) == [(b, 2 * b), (4 * b, 5 * b)]
    assert nonzero_runs(b"a" * (3 * b + 5), b) == [(0, 3 * b + 5)]
    assert nonzero_runs(bytes(b) + b"\0\0z", b) == [(b, b + 3)]
    assert nonzero_runs(bytes(2 * b), b) == []


def test_finished_disk_short_circuits(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    r = RawDiskReader(source)
    first = copy_disk(r, RawDiskWriter(dst, r.size), store, "d", chunk_size=CS)
    again = CountingReader(source, fail_after=0)  # any read would raise
    res = copy_disk(again, RawDiskWriter(dst, r.size), store, "d", chunk_size=CS)
    assert res.source_digest == first.source_digest
    assert res.bytes_written == 0 and again.offsets == []


def test_resume_after_a_read_error_reads_only_the_rest(
    tmp_path: Path, source: Path, store: ProgressStore
):
    dst = tmp_path / "dst.img"
    failing = CountingReader(source, fail_after=6)
    with pytest.raises(TransferError) as err:
        copy_disk(failing, RawDiskWriter(dst, failing.size), store, "disk-7", chunk_size=CS)
    msg = str(err.value)
    assert "disk-7" in msg and "offset" in msg and "simulated source failure" in msg
    assert err.value.offset is not None and err.value.offset % CS == 0
    rec = store.get_disk("disk-7")
    assert rec is not None and not rec.completed
    done = store.done_chunks("disk-7")
    assert 0 < len(done) <= 6

    again = CountingReader(source)
    res = copy_disk(again, RawDiskWriter(dst, again.size), store, "disk-7", chunk_size=CS)
    reread = {o // CS for o in again.offsets}
    assert reread == data_chunks(source) - set(done)
    assert res.resumed_chunks == len(done)
    assert res.source_digest == disk_digest_of_file(source, chunk_size=CS)
    assert dst.read_bytes() == source.read_bytes()


def test_write_error_names_disk_and_offset(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    r = RawDiskReader(source)
    with pytest.raises(TransferError) as err:
        copy_disk(r, FailingWriter(dst, r.size, 22 * CS), store, "dx", chunk_size=CS, streams=2)
    assert f"offset {22 * CS}" in str(err.value) and "No space left" in str(err.value)
    assert 22 not in store.done_chunks("dx")
    assert not store.get_disk("dx").completed


def test_cancel_stops_promptly_and_resumes(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    cancel = threading.Event()
    r = CountingReader(source, cancel_after=(4, cancel), delay=0.01)
    with pytest.raises(TransferCanceled):
        copy_disk(r, RawDiskWriter(dst, r.size), store, "c", chunk_size=CS, cancel=cancel)
    # stopped within the work already in flight (2 x streams), not the whole disk
    assert len(r.offsets) <= 4 + 8 < len(data_chunks(source))
    done = store.done_chunks("c")
    assert done and not store.get_disk("c").completed
    r2 = CountingReader(source)
    res = copy_disk(r2, RawDiskWriter(dst, r2.size), store, "c", chunk_size=CS)
    assert len(r2.offsets) == len(data_chunks(source)) - len(done)
    assert res.source_digest == disk_digest_of_file(source, chunk_size=CS)


def test_progress_is_monotonic_and_throttled(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    seen: list[CopyProgress] = []
    threads: set[int] = set()

    def on_progress(p: CopyProgress) -> None:
        seen.append(p)
        threads.add(threading.get_ident())

    r = CountingReader(source, delay=0.03)
    t0 = time.monotonic()
    copy_disk(
        r, RawDiskWriter(dst, r.size), store, "p", chunk_size=CS, streams=2, on_progress=on_progress
    )
    elapsed = time.monotonic() - t0
    assert len(threads) == 1
    assert 2 <= len(seen) <= elapsed * 5 + 3
    done = [p.bytes_done for p in seen]
    assert done == sorted(done)
    assert [p.data_bytes_written for p in seen] == sorted(p.data_bytes_written for p in seen)
    last = seen[-1]
    assert last.bytes_done == last.total == r.size and last.eta == 0
    assert all(p.rate >= 0 for p in seen)


def test_verify_detects_a_corrupted_target(tmp_path: Path, source: Path, store: ProgressStore):
    dst = tmp_path / "dst.img"
    r = RawDiskReader(source)
    w = RecordingWriter(dst, r.size, corrupt_at=40 * MiB + 12345)
    with RawDiskReader(dst) as verify, pytest.raises(TransferError, match="digest mismatch"):
        copy_disk(r, w, store, "v", chunk_size=CS, verify_reader=verify)
    rec = store.get_disk("v")
    assert rec is not None and not rec.completed  # the caller decides: reset or investigate
    assert store.done_chunks("v")


def test_target_smaller_than_source_is_refused(
    tmp_path: Path, source: Path, store: ProgressStore
) -> None:
    r = RawDiskReader(source)
    with pytest.raises(TransferError, match="target holds"):
        copy_disk(r, RawDiskWriter(tmp_path / "d.img", MiB), store, "s", chunk_size=CS)


class DurableWriter(RawDiskWriter):
    """Knows which writes a flush has covered."""

    def __init__(self, path: Path, size: int) -> None:
        super().__init__(path, size)
        self.written: set[int] = set()
        self.durable: set[int] = set()
        self._lock = threading.Lock()

    def write(self, offset: int, data: bytes) -> None:
        time.sleep(0.002)
        super().write(offset, data)
        with self._lock:
            self.written.add(offset // CS)

    def flush(self) -> None:
        with self._lock:
            covered = set(self.written)
        super().flush()
        self.durable |= covered


class CheckingStore(ProgressStore):
    writer: DurableWriter

    def record_chunks(self, disk: str, chunks: Iterable[tuple[int, bytes, int]]) -> None:
        chunks = list(chunks)
        for idx, _h, nbytes in chunks:
            assert nbytes == 0 or idx in self.writer.durable, f"chunk {idx} recorded before flush"
        super().record_chunks(disk, chunks)


def test_chunks_are_recorded_only_after_a_flush(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("reconciler.transfer.engine.CHECKPOINT_BYTES", 2 * CS)  # many batches
    store = CheckingStore(tmp_path / "p.db")
    r = RawDiskReader(source)
    store.writer = DurableWriter(tmp_path / "dst.img", r.size)
    copy_disk(r, store.writer, store, "dur", chunk_size=CS, streams=4)
    assert len(store.done_chunks("dur")) == len(data_chunks(source))
    store.close()


# -- kill -9 in the middle of a copy -----------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from reconciler.progress.store import ProgressStore
    from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter
    from reconciler.transfer.engine import copy_disk

    class Gate(RawDiskReader):
        # Reads 100 chunks, then blocks for good: the copy cannot end before the kill.

        def __init__(self, path):
            super().__init__(path)
            self.left, self.lock = 100, threading.Lock()

        def read(self, offset, length):
            with self.lock:
                self.left -= 1
                blocked = self.left < 0
            if blocked:
                threading.Event().wait()
            return super().read(offset, length)

    src, dst, db = sys.argv[1:4]
    r = Gate(src)
    copy_disk(r, RawDiskWriter(dst, r.size), ProgressStore(Path(db)), "killed", streams=2)
    print("finished")
    """
)


@pytest.mark.integration
def test_kill_9_then_resume(tmp_path: Path) -> None:
    src, dst, db = tmp_path / "src.img", tmp_path / "dst.img", tmp_path / "p.db"
    block = os.urandom(MiB)
    with open(src, "wb") as f:  # 512 MiB of data in 4 regions of a 2 GiB disk
        f.truncate(2048 * MiB)
        for region in range(4):
            f.seek(region * 500 * MiB + 3 * MiB)
            for i in range(128):
                f.write(i.to_bytes(8, "little") + region.to_bytes(8, "little") + block[16:])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(src), str(dst), str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    recorded = 0
    deadline = time.monotonic() + 120  # a safety net: the child cannot finish on its own
    try:
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.1)
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as c:
                        recorded = c.execute("SELECT count(*) FROM chunks").fetchone()[0]
                except sqlite3.OperationalError:
                    continue  # schema not created yet
            if recorded >= 20:
                break
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    store = ProgressStore(db)
    done = store.done_chunks("killed")
    assert len(done) >= 20
    r = CountingReader(src)
    res = copy_disk(r, RawDiskWriter(dst, r.size), store, "killed", streams=2)
    with RawDiskReader(src) as sr:
        data = {
            c
            for e in sr.extents()
            if not e.zero
            for c in range(e.start // (4 * MiB), (e.end - 1) // (4 * MiB) + 1)
        }
    assert len(r.offsets) == len(data) - len(done) < len(data)
    assert res.resumed_chunks == len(done)
    assert res.source_digest == disk_digest_of_file(src)
    assert disk_digest_of_file(dst) == res.source_digest
    store.close()


def test_disks_copied_at_once_share_one_stream_budget(tmp_path: Path) -> None:
    """A VM's disks copied at once under one StreamBudget: never more chunks in flight, over
    all of them, than the budget's streams, and every disk complete and verified."""
    budget = StreamBudget(2)
    lock = threading.Lock()
    flight = {"now": 0, "max": 0}

    class Watching(RawDiskReader):
        def read(self, offset: int, length: int) -> bytes:
            with lock:
                flight["now"] += 1
                flight["max"] = max(flight["max"], flight["now"])
            try:
                return super().read(offset, length)
            finally:
                with lock:
                    flight["now"] -= 1

    store = ProgressStore(tmp_path / "p.db")
    sources = []
    for i in range(3):
        src = tmp_path / f"s{i}.img"
        with open(src, "wb") as f:
            f.write(random.Random(i).randbytes(4 * MiB))
        sources.append(src)
    results: dict[int, tuple[str, str]] = {}

    def one(i: int) -> None:
        dst = tmp_path / f"t{i}.img"
        with Watching(sources[i]) as r, RawDiskWriter(dst, r.size) as w, RawDiskReader(dst) as v:
            res = copy_disk(
                r,
                w,
                store,
                f"d{i}",
                chunk_size=256 * 1024,
                streams=4,
                verify_reader=v,
                budget=budget,
            )
        results[i] = (res.source_digest, res.target_digest)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    for i, src in enumerate(sources):
        want = disk_digest_of_file(src, chunk_size=256 * 1024)
        assert results[i] == (want, want)
        assert (tmp_path / f"t{i}.img").read_bytes() == src.read_bytes()
    # the source is read only by chunks being copied, each holding one of the budget's streams
    assert 1 <= flight["max"] <= 2


class ReadBackRecorder(RawDiskReader):
    """The target as the engine verifies it: records which offsets were read back."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.offsets: list[int] = []
        self._lock = threading.Lock()

    def pread_into(self, offset: int, buf: bytearray | memoryview) -> int:
        with self._lock:
            self.offsets.append(offset)
        return super().pread_into(offset, buf)

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self.offsets.append(offset)
        return super().read(offset, length)


def test_verify_reads_back_what_was_written_and_takes_holes_from_the_target_map(
    tmp_path: Path, source: Path, store: ProgressStore
) -> None:
    """Every written chunk is read back from the target; chunks the target's own extent map
    shows as holes are never read, and the digest still covers them."""
    dst = tmp_path / "dst.img"
    r = RawDiskReader(source)
    w = RecordingWriter(dst, r.size)
    with ReadBackRecorder(dst) as verify:
        res = copy_disk(r, w, store, "v", chunk_size=CS, verify_reader=verify)
        read_back = {o // CS for o in verify.offsets}
    written = {o // CS for o, _ in w.writes}
    assert written <= read_back  # what was written was read back
    assert read_back <= data_chunks(dst)  # and no hole of the target was read
    assert res.target_digest == res.source_digest == disk_digest_of_file(source, chunk_size=CS)


def test_data_where_the_source_has_a_hole_fails_verify(
    tmp_path: Path, source: Path, store: ProgressStore
) -> None:
    """A target that is not blank where the copy leaves holes (a reused device, a stale
    image) does not read back as the source: the target's extent map sends verify there."""
    dst = tmp_path / "dst.img"
    hole = 60 * MiB  # no data in the source there
    with RawDiskReader(source) as probe:
        assert hole // CS not in data_chunks(source) and probe.read(hole, 4) == bytes(4)
    r = RawDiskReader(source)
    w = RawDiskWriter(dst, r.size)
    fd = os.open(dst, os.O_WRONLY)
    os.pwrite(fd, b"stale", hole)
    os.close(fd)
    with RawDiskReader(dst) as verify, pytest.raises(TransferError, match="digest mismatch"):
        copy_disk(r, w, store, "v", chunk_size=CS, verify_reader=verify)
    rec = store.get_disk("v")
    assert rec is not None and not rec.completed


def test_data_chunks_write_no_zero_4k_blocks(tmp_path: Path, store: ProgressStore) -> None:
    """Data starting and ending inside 64 KiB blocks allocates no more than the data's own
    4 KiB blocks on the target (as ``qemu-img convert`` leaves it)."""
    src, dst = tmp_path / "s.img", tmp_path / "d.img"
    make_image(src, 8 * MiB, [(MiB + 3 * 4096, os.urandom(5 * 4096)), (5 * MiB, b"x" * 100)])
    r = RawDiskReader(src)
    w = RecordingWriter(dst, r.size)
    copy_disk(r, w, store, "s", chunk_size=4 * MiB)
    assert sorted(w.writes) == [(MiB + 3 * 4096, 5 * 4096), (5 * MiB, 4096)]
    assert dst.read_bytes() == src.read_bytes()
    assert allocated_bytes(dst) <= allocated_bytes(src)
