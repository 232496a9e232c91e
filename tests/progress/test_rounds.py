"""Copy rounds in the progress store: what a precopy round marks, keeps and carries over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore, RoundChunk, RoundError

H = {i: bytes([i]) * 32 for i in range(10)}  # stand-in chunk hashes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ProgressStore]:
    s = ProgressStore(tmp_path / "progress.db")
    yield s
    s.close()


def full_copy(store: ProgressStore, disk: str = "d", change_id: str = "c0") -> None:
    """A finished full copy: chunks 0-5 recorded (chunk 5 read as zeros), 6-9 were holes."""
    store.start_disk(disk, 10 * 100, 100)
    store.record_chunks(disk, [(i, H[i], 100) for i in range(5)] + [(5, H[5], 0)])
    store.finish_disk(disk, "sha-full", "sha-full", "t0", change_id=change_id)


def test_the_full_copy_is_round_0_when_it_names_a_change_id(store: ProgressStore) -> None:
    full_copy(store)
    r0 = store.last_round("d")
    assert r0 is not None and (r0.round, r0.change_id, r0.completed) == (0, "c0", "t0")
    assert r0.bytes_written == 500 and r0.source_digest == "sha-full"
    full_copy(store, "plain", change_id="")  # a cold copy records no round
    assert store.last_round("plain") is None and store.rounds("plain") == []


def test_begin_round_drops_the_touched_records_and_keeps_their_old_hashes(store: ProgressStore):
    full_copy(store)
    rr = store.begin_round("d", 1, [2, 7, 2], changes="x", change_id="c1", when="t1")
    assert (rr.round, rr.change_id, rr.chunks, rr.started, rr.completed) == (1, "c1", 2, "t1", "")
    assert set(store.done_chunks("d")) == {0, 1, 3, 4, 5}
    assert store.round_chunks("d") == {
        2: RoundChunk(H[2], whole=False, done=False),
        7: RoundChunk(None, whole=False, done=False),  # a hole: never recorded
    }
    disk = store.get_disk("d")
    assert disk is not None and not disk.completed and not disk.source_digest


def test_begin_round_again_changes_nothing(store: ProgressStore) -> None:
    full_copy(store)
    store.begin_round("d", 1, [2, 3], changes="x")
    store.record_chunks("d", [(2, b"new2", 100)])
    again = store.begin_round("d", 1, [2, 3], changes="x")
    assert again.round == 1 and again.chunks == 2
    assert store.done_chunks("d")[2] == (b"new2", 100)  # recorded during the round: kept
    assert store.round_chunks("d")[2].done and not store.round_chunks("d")[3].done
    with pytest.raises(RoundError, match="other changed areas"):
        store.begin_round("d", 1, [2, 3, 4], changes="y")


def test_rounds_build_on_a_finished_copy_and_only_go_forward(store: ProgressStore) -> None:
    with pytest.raises(RoundError, match="no finished copy"):
        store.begin_round("d", 1, [1])
    store.start_disk("d", 1000, 100)
    store.record_chunks("d", [(0, H[0], 100)])
    with pytest.raises(RoundError, match="no finished copy"):
        store.begin_round("d", 1, [1])  # the full copy is still running
    store.finish_disk("d", "s", "s", "t0")
    with pytest.raises(RoundError, match="numbered from 1"):
        store.begin_round("d", 0, [1])
    store.begin_round("d", 2, [1])
    with pytest.raises(RoundError, match="older than round 2"):
        store.begin_round("d", 1, [1])


def test_finish_round_needs_every_chunk_and_makes_the_disk_whole(store: ProgressStore) -> None:
    full_copy(store)
    store.begin_round("d", 1, [2, 8], changes="x", change_id="c1")
    store.record_chunks("d", [(2, b"n2", 100)])
    with pytest.raises(RoundError, match="still has 1 chunks"):
        store.finish_round("d", 1, "s1", "s1", "t1")
    store.record_chunks("d", [(8, b"n8", 40)])
    rr = store.finish_round("d", 1, "s1", "t1-digest", "t1")
    assert (rr.completed, rr.source_digest, rr.target_digest, rr.bytes_written) == (
        "t1",
        "s1",
        "t1-digest",
        140,
    )
    assert store.round_chunks("d") == {}
    disk = store.get_disk("d")
    assert disk is not None and (disk.completed, disk.source_digest) == ("t1", "s1")
    last = store.last_round("d", completed=True)
    assert last is not None and last.change_id == "c1"
    assert store.begin_round("d", 1, [2, 8], changes="x").completed == "t1"  # no-op
    assert [r.round for r in store.rounds("d")] == [0, 1]


def test_an_unfinished_round_is_carried_into_the_next(store: ProgressStore) -> None:
    full_copy(store)
    store.begin_round("d", 1, [1, 2, 3], changes="x", change_id="c1")
    store.record_chunks("d", [(1, b"n1", 100)])  # 2 and 3 were never made durable
    unfinished = store.last_round("d")
    assert unfinished is not None and unfinished.round == 1 and not unfinished.completed
    assert store.last_round("d", completed=True).round == 0
    rr = store.begin_round("d", 2, [3, 4], changes="y", change_id="c2")
    assert rr.chunks == 3
    assert store.round_chunks("d") == {
        2: RoundChunk(H[2], whole=True, done=False),  # carried over, maybe half-written
        3: RoundChunk(H[3], whole=True, done=False),
        4: RoundChunk(H[4], whole=False, done=False),
    }
    assert set(store.done_chunks("d")) == {0, 1, 5}


def test_a_failing_begin_round_changes_nothing(store: ProgressStore) -> None:
    full_copy(store)

    def chunks() -> Iterator[int]:
        yield 1
        raise OSError("list ended early")

    with pytest.raises(OSError):
        store.begin_round("d", 1, chunks(), changes="x")
    assert store.last_round("d").round == 0
    assert set(store.done_chunks("d")) == {0, 1, 2, 3, 4, 5} and store.round_chunks("d") == {}
    assert store.get_disk("d").completed == "t0"


def test_rounds_survive_a_restart_and_go_with_the_disk(tmp_path: Path) -> None:
    s = ProgressStore(tmp_path / "p.db")
    full_copy(s)
    s.begin_round("d", 1, [2, 3], changes="x", change_id="c1")
    s.record_chunks("d", [(2, b"n2", 100)])
    s.close()
    s = ProgressStore(tmp_path / "p.db")
    assert s.begin_round("d", 1, [2, 3], changes="x").chunks == 2
    assert {i for i, c in s.round_chunks("d").items() if not c.done} == {3}
    s.start_disk("d", 2000, 100)  # another geometry: a new disk, nothing of the old one
    assert s.rounds("d") == [] and s.round_chunks("d") == {} and s.done_chunks("d") == {}
    full_copy(s, "e")
    s.begin_round("e", 1, [1], changes="x")
    s.reset_disk("e")
    assert s.rounds("e") == [] and s.round_chunks("e") == {} and s.get_disk("e") is None
    s.close()
