"""Copy one disk from any DiskReader to any DiskWriter: parallel, sparse, resumable, verified.

The disk is cut into fixed chunks (those of reconciler.transfer.digest, so the hashes computed
while copying are the source digest).  Chunks lying inside zero extents are neither read nor
written; chunks touching data are read whole and hashed, and their non-zero 64 KiB pieces are
written (the target is a sparse image or a disk that already reads as zeros).
A chunk is recorded in the progress store only after the writer has made it durable, so a copy
killed at any point (kill -9 included) resumes without losing or duplicating a byte range.
With a verify reader, a full copy reads each chunk back right after writing it (the verify
overlaps the copy) and compares the digest of what the target holds with the source's; the
chunks it did not write (holes, resumed chunks) are decided by the target's own extent map:
read back and hashed where the target holds data, the zero record unread where it holds none.

Warm migration's precopy rounds use copy_changes: only the chunks a list of changed areas
touches are read and written, into a target that holds the previous round's data, so zeros
inside changed areas are written too (a guest that zeroed a block gets zeros on the target).
Zero pieces are still left out where the target is known to read as zeros (a chunk no round
ever wrote data to).  ``store.begin_round`` first drops the touched chunks' records in one
transaction, so a round killed midway resumes with only what it has not made durable, and the
other chunks keep their recorded hashes: a round's digest is the digest of the whole disk as the
round's snapshot holds it.  A round left unfinished for good is absorbed by the next one (its
uncopied chunks are carried over and written whole), so no changed area is ever lost.

The safe order of a warm migration's steps (store the new change id, then remove the previous
snapshot, then create the next one: MTV-1656) is the pipeline's job.  What the engine gives it
is the round records (``store.last_round``): the change id each round copied up to and whether
it completed, so a killed reconciler either continues the unfinished round under its number,
with the same changed areas (a different list is refused), or asks for the areas changed since
the last completed round's change id.

Threads: ``streams`` workers call ``reader.read`` and ``writer.write`` concurrently, and one
checkpointer thread calls ``writer.flush`` (while writes of later chunks go on) and then
``store.record_chunks``; progress callbacks come from the calling thread only.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

from reconciler.progress.checkpoints import CheckpointStore, RoundChunk, RoundError, RoundRecord
from reconciler.transfer.digest import (
    CHUNK_SIZE,
    DEFAULT,
    DigestFormat,
    MiB,
    bounded_map,
    chunk_count,
    chunk_hashes_of_reader,
    chunk_length,
    combine,
    data_chunk_flags,
    disk_digest_of_reader,
    is_zero,
    leaf_size,
    record_format,
    record_leaves,
    zeros,
)
from reconciler.transfer.extents import DiskReader, DiskWriter, Extent

CHECKPOINT_BYTES = 64 * MiB  # flush + record after this much new data ...
CHECKPOINT_SECONDS = 1.0  # ... or this much time, whichever comes first
PROGRESS_INTERVAL = 0.2  # at most ~5 progress callbacks a second
SPARSE_BLOCK = 64 * 1024  # zero pieces this big inside a data chunk are not written
SOURCE_BLOCK = 4096  # a source's block size, unless its reader says (``block_size``) or its
# changed areas are not aligned to it (then 512): zero blocks of a changed area over blank
# target space are left holes at this granularity, never at our chunk's or leaf's


class TransferError(Exception):
    """A disk copy failed; what was durable is recorded, the disk is not marked done."""

    def __init__(self, message: str, disk_id: str = "", offset: int | None = None) -> None:
        super().__init__(message)
        self.disk_id = disk_id
        self.offset = offset


class DigestMismatch(TransferError):
    """The target does not read back what was copied: its recorded chunks cannot be trusted."""


class TransferCanceled(Exception):
    """The copy was stopped through its cancel event; resuming continues where it stopped."""

    def __init__(self, disk_id: str, bytes_done: int) -> None:
        super().__init__(f"disk {disk_id}: copy canceled at {bytes_done} bytes")
        self.disk_id = disk_id
        self.bytes_done = bytes_done


@dataclass(frozen=True)
class CopyProgress:
    """A snapshot for status and logs; ``bytes_done`` counts logical bytes, holes included.

    In a precopy round ``total`` and ``bytes_done`` count the chunks the round copies.
    """

    disk_id: str
    total: int
    bytes_done: int
    data_bytes_written: int
    rate: float
    eta: float | None
    resumed_bytes: int


@dataclass(frozen=True)
class CopyResult:
    """How a copy ended; the digests are of the whole disk, after a round too.

    ``round`` is 0 for a full copy; ``chunks_touched`` counts the chunks a round copies (every
    chunk for a full copy); ``bytes_written`` and ``resumed_chunks`` are of this call.
    """

    source_digest: str
    target_digest: str
    bytes_written: int
    resumed_chunks: int
    chunks_total: int
    seconds: float
    round: int = 0
    chunks_touched: int = 0


class StreamBudget:
    """Streams that copies running at once share (a VM's disks): each chunk being read and
    written holds one.  Several disks then use no more streams together than ``streams``, and
    the biggest disk gets all of them once the others are done."""

    def __init__(self, streams: int) -> None:
        self.streams = max(1, streams)
        self._slots = threading.BoundedSemaphore(self.streams)

    def __enter__(self) -> StreamBudget:
        self._slots.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class _Skipped(Exception):
    """A queued chunk that was not started because the copy is stopping."""


class _ChunkError(Exception):
    def __init__(self, offset: int, length: int, op: str, cause: BaseException) -> None:
        super().__init__(f"{op} of {length} bytes at offset {offset} failed: {_describe(cause)}")
        self.offset = offset
        self.op = op
        self.cause = cause


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def copy_disk(
    reader: DiskReader,
    writer: DiskWriter,
    store: CheckpointStore,
    disk_id: str,
    *,
    chunk_size: int = CHUNK_SIZE,
    streams: int = 4,
    on_progress: Callable[[CopyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    verify_reader: DiskReader | None = None,
    change_id: str = "",
    budget: StreamBudget | None = None,
) -> CopyResult:
    """Copy ``reader`` into ``writer``, resuming whatever ``store`` says is already durable.

    With ``budget``, each chunk in flight also holds one of the budget's streams, shared with
    the other copies given the same budget (a VM's disks copied at once).

    Raises TransferCanceled when ``cancel`` is set, TransferError on a read/write/flush error or
    when ``verify_reader``'s digest differs from the source's (the store is then left as is so
    the caller decides whether to reset).  A disk the store marks completed returns at once.
    ``change_id`` (the snapshot's, in a warm migration) is recorded as round 0 when the copy
    completes: the first precopy round asks for the areas changed since it.
    """
    rec = store.get_disk(disk_id)
    if rec is not None and rec.completed and rec.size == reader.size:
        n = chunk_count(rec.size, rec.chunk_size)
        return CopyResult(rec.source_digest, rec.target_digest, 0, n, n, 0.0, 0, n)
    last = store.last_round(disk_id)
    if last is not None and not last.completed:
        raise TransferError(
            f"disk {disk_id}: precopy round {last.round} is unfinished and the target is not"
            " blank; continue it with copy_changes, or reset the disk for a full copy",
            disk_id,
        )
    _check_target(writer, reader, disk_id)
    copy = _DiskCopy(
        reader, writer, store, disk_id, chunk_size, max(1, streams), on_progress, cancel
    )
    copy.budget = budget
    return copy.run(verify_reader, change_id)


def copy_changes(
    reader: DiskReader,
    writer: DiskWriter,
    store: CheckpointStore,
    disk_id: str,
    changed: Sequence[Extent],
    *,
    round: int,
    change_id: str = "",
    chunk_size: int = CHUNK_SIZE,
    streams: int = 4,
    on_progress: Callable[[CopyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    verify_reader: DiskReader | None = None,
    base_reader: DiskReader | None = None,
    budget: StreamBudget | None = None,
) -> CopyResult:
    """Precopy round ``round`` (1, 2, ...): copy the chunks that ``changed`` touches.

    ``changed`` is what the source reports changed since the previous round's change id
    (vSphere QueryChangedDiskAreas; an extent's ``zero`` flag is ignored: a changed area is
    read and written whatever it holds).  ``change_id`` is the id of the snapshot ``reader``
    reads, recorded with the round.  Calling again with the same round and areas resumes it
    (or, once completed, returns its result at once); the same round with other areas, an
    older round, or a disk without a finished copy raise TransferError.  ``verify_reader``
    re-reads only the chunks the round copied: the others were not written since an earlier
    round (or the full copy) verified them, and re-reading a whole disk each round would
    defeat rounds that cost what changed.  Raises like copy_disk otherwise.

    ``base_reader`` reads the target: with it, a touched chunk is read from the source only
    where it changed, the rest of it from the target (which holds the previous round there, as
    changed block tracking says), so a round reads from the source what changed, not whole
    chunks.  The chunk hashes, and so the digest, then rest on changed block tracking for the
    unchanged bytes, as every CBT-based copy does; without it, touched chunks are read whole.
    """
    rec = store.get_disk(disk_id)
    if rec is None:
        raise TransferError(f"disk {disk_id}: no full copy to apply round {round} to", disk_id)
    if (rec.size, rec.chunk_size) != (reader.size, chunk_size):
        raise TransferError(
            f"disk {disk_id}: round {round} reads {reader.size} bytes in {chunk_size}-byte"
            f" chunks, the copy it builds on has {rec.size} bytes in {rec.chunk_size}-byte chunks",
            disk_id,
        )
    _check_target(writer, reader, disk_id)
    areas = merge_areas(changed, reader.size, disk_id)
    ranges = chunk_ranges(areas, reader.size, chunk_size)
    try:
        rr = store.begin_round(
            disk_id,
            round,
            ranges.keys(),
            changes=areas_fingerprint(areas),
            change_id=change_id,
            when=_now_iso(),
        )
    except RoundError as e:
        raise TransferError(str(e), disk_id) from e
    n = chunk_count(reader.size, chunk_size)
    if rr.completed:
        return CopyResult(
            rr.source_digest, rr.target_digest, 0, rr.chunks, n, 0.0, round, rr.chunks
        )
    copy = _DiskCopy(
        reader, writer, store, disk_id, chunk_size, max(1, streams), on_progress, cancel
    )
    copy.budget = budget
    return copy.run_round(rr, ranges, verify_reader, base_reader)


def merge_areas(changed: Iterable[Extent], size: int, disk_id: str = "") -> list[tuple[int, int]]:
    """Changed extents as sorted, merged ``(start, end)`` ranges; empty ones are dropped.

    An area outside the disk means the list belongs to another disk (or a resized one), so it
    raises TransferError rather than being clipped.
    """
    spans = sorted((e.start, e.end) for e in changed if e.length > 0)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if start < 0 or end > size:
            raise TransferError(
                f"disk {disk_id}: changed area [{start}, {end}) lies outside its {size} bytes",
                disk_id,
                start,
            )
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def areas_fingerprint(areas: Sequence[tuple[int, int]]) -> str:
    """Names a round's changed areas, so a resumed round is known to be the same round."""
    h = hashlib.sha256()
    for start, end in areas:
        h.update(f"{start}+{end - start};".encode())
    return f"{len(areas)}:{sum(e - s for s, e in areas)}:sha256:{h.hexdigest()}"


def chunk_ranges(
    areas: Sequence[tuple[int, int]], size: int, chunk_size: int
) -> dict[int, list[tuple[int, int]]]:
    """For each chunk the areas touch, the ``(start, end)`` ranges inside it (chunk-relative)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for start, end in areas:
        end = min(end, size)
        pos = start
        while pos < end:
            idx = pos // chunk_size
            base = idx * chunk_size
            stop = min(end, base + chunk_size)
            out.setdefault(idx, []).append((pos - base, stop - base))
            pos = stop
    return out


def _check_target(writer: DiskWriter, reader: DiskReader, disk_id: str) -> None:
    if writer.size < reader.size:
        raise TransferError(
            f"disk {disk_id}: target holds {writer.size} bytes, source needs {reader.size}",
            disk_id,
        )


class _DiskCopy:
    """The state of one copy_disk call; only the calling thread touches it, workers don't."""

    def __init__(
        self,
        reader: DiskReader,
        writer: DiskWriter,
        store: CheckpointStore,
        disk_id: str,
        chunk_size: int,
        streams: int,
        on_progress: Callable[[CopyProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self.reader, self.writer, self.store = reader, writer, store
        self.disk_id = disk_id
        self.chunk_size = chunk_size
        self.streams = streams
        self.on_progress = on_progress
        self.cancel = cancel
        self.size = reader.size
        self.total = self.size  # what progress counts up to
        self.n = chunk_count(self.size, chunk_size)
        self.work: Iterable[int] = range(self.n)  # chunks to consider, in order
        self.flags: bytearray | None = None  # full copy: 0 for chunks inside zero extents
        # chunk -> ranges to write as read, zeros included; other chunks are written sparsely
        self.ranges: dict[int, list[tuple[int, int]]] = {}
        # a round: chunk -> its changed ranges, the only bytes read from the source; the rest
        # comes from ``base`` (the target), or is zeros where the chunk held none (None)
        self.changed: dict[int, tuple[bool, list[tuple[int, int]]]] = {}
        self.base: DiskReader | None = None
        # the digest format: the default's tree records (leaves of ``self.leaf`` bytes) unless
        # the disk was recorded by an older version in another format, which it then keeps
        self.fmt: DigestFormat = DEFAULT
        self.leaf = leaf_size(chunk_size)
        # a round in the tree format: chunk -> its record before the round (None: zeros)
        self.prev: dict[int, bytes | None] = {}
        self.block = SOURCE_BLOCK
        self.budget: StreamBudget | None = None  # streams shared with other copies
        # a full copy: the target, read back right after each chunk is written (the verify
        # overlaps the copy); chunk -> the record of what the target holds there
        self.inline_verify: DiskReader | None = None
        self.verified: dict[int, bytes] = {}
        self.buffers = threading.local()  # each worker's reused read buffers
        self.stop = threading.Event()  # tells workers not to start queued chunks
        self.failure: _ChunkError | None = None
        self.hashes: list[bytes | None] = [None] * self.n
        self.unrecorded: list[tuple[int, bytes, int]] = []
        self.unflushed_bytes = 0
        self.bytes_done = 0
        self.bytes_written = 0
        self.resumed_bytes = 0
        self.resumed_chunks = 0
        self.t0 = time.monotonic()
        self.last_flush = self.t0
        self.last_report = 0.0
        self.ckpt_queue: queue.Queue[tuple[list[tuple[int, bytes, int]], bool] | None]
        self.ckpt_queue = queue.Queue(maxsize=2)
        self.ckpt_error: BaseException | None = None
        self.ckpt_thread = threading.Thread(
            target=self._checkpointer, name=f"checkpoint-{disk_id}", daemon=True
        )

    # -- the calling thread --------------------------------------------------------------

    def run(self, verify_reader: DiskReader | None, change_id: str = "") -> CopyResult:
        """The full copy: every chunk not yet recorded, holes skipped, into a blank target."""
        self.store.start_disk(self.disk_id, self.size, self.chunk_size)
        done = self.store.done_chunks(self.disk_id)
        self.fmt = _resume_format(h for h, _n in done.values())
        for idx, (h, _nbytes) in done.items():
            if 0 <= idx < self.n and _format_or_none(h) is self.fmt:  # others are recopied
                self.hashes[idx] = h
                self.resumed_chunks += 1
                self.resumed_bytes += chunk_length(idx, self.size, self.chunk_size)
        self.bytes_done = self.resumed_bytes
        try:
            self.flags = data_chunk_flags(self.reader.extents(), self.size, self.chunk_size)
        except Exception as e:
            raise TransferError(
                f"disk {self.disk_id}: reading extents failed: {_describe(e)}", self.disk_id
            ) from e
        self.inline_verify = verify_reader
        self._copy_all()
        source_digest = self._source_digest()
        target_digest = ""
        if verify_reader is not None:
            target_digest = self._verify_whole(verify_reader, source_digest)
        self.store.finish_disk(
            self.disk_id, source_digest, target_digest, _now_iso(), change_id=change_id
        )
        self._report(force=True)
        return self._result(source_digest, target_digest, 0, self.n)

    def run_round(
        self,
        rr: RoundRecord,
        ranges: dict[int, list[tuple[int, int]]],
        verify_reader: DiskReader | None,
        base_reader: DiskReader | None = None,
    ) -> CopyResult:
        """A precopy round begun in the store: copy its chunks not yet done this round."""
        self.base = base_reader
        members = self.store.round_chunks(self.disk_id)
        recorded = self.store.done_chunks(self.disk_id)
        self.fmt = _round_format(
            [h for h, _n in recorded.values()]
            + [m.prev_hash for m in members.values() if m.prev_hash is not None]
        )
        self.block = _source_block(self.reader, ranges.values())
        for idx in range(self.n):
            if idx in recorded:
                self.hashes[idx] = recorded[idx][0]
            elif idx not in members:  # never held data, untouched since: reads as zeros
                self.hashes[idx] = self._zero_record(idx)
        self.total = 0
        work: list[int] = []
        for idx in sorted(members):
            length = chunk_length(idx, self.size, self.chunk_size)
            self.total += length
            if members[idx].done:
                self.resumed_chunks += 1
                self.resumed_bytes += length
                continue
            work.append(idx)
            partial = not members[idx].whole and ranges.get(idx) is not None
            if partial and self.fmt.tree:
                self.prev[idx] = members[idx].prev_hash
                self.changed[idx] = (members[idx].prev_hash is None, ranges[idx])
                continue
            plan = self._round_plan(members[idx], ranges.get(idx), length)
            if plan is not None:
                self.ranges[idx] = plan
            if partial and (plan is None or self.base is not None):
                self.changed[idx] = (plan is None, ranges[idx])
        self.work = work
        self.bytes_done = self.resumed_bytes
        self._copy_all()
        source_digest = self._source_digest()
        target_digest = ""
        if verify_reader is not None and not self.fmt.tree:
            target_digest = self._verify_chunks(verify_reader, sorted(members), source_digest)
        elif verify_reader is not None:
            leaves = {
                idx: None if members[idx].whole else self._touched_leaves(idx, ranges.get(idx))
                for idx in members
            }
            target_digest = self._verify_leaves(verify_reader, leaves, source_digest)
        self.store.finish_round(self.disk_id, rr.round, source_digest, target_digest, _now_iso())
        self._report(force=True)
        return self._result(source_digest, target_digest, rr.round, len(members))

    def _round_plan(
        self, member: RoundChunk, ranges: list[tuple[int, int]] | None, length: int
    ) -> list[tuple[int, int]] | None:
        """What to write of a round's chunk; None: only its data, the target reads zeros there.

        A chunk an unfinished earlier round may have half-written is written whole; a chunk
        that held data is written where it changed, zeros included.  Within one round the
        source is one snapshot, so a resumed write repeats the same bytes.
        """
        if member.whole or ranges is None:
            return [(0, length)]
        if member.prev_hash is None or member.prev_hash == self.fmt.zero_record(
            length, self.chunk_size
        ):
            return None
        return ranges

    def _zero_record(self, idx: int) -> bytes:
        """The record of chunk ``idx`` when it reads as zeros, in the disk's format."""
        return self.fmt.zero_record(chunk_length(idx, self.size, self.chunk_size), self.chunk_size)

    def _record(self, data: bytes | bytearray) -> bytes:
        """The record of a chunk's content, in the disk's format."""
        return self.fmt.record(data, self.chunk_size)

    def _touched_leaves(self, idx: int, ranges: list[tuple[int, int]] | None) -> list[int] | None:
        """The leaves of chunk ``idx`` that ``ranges`` touch (None: all of them)."""
        if ranges is None:
            return None
        leaf = self.leaf
        return sorted({k for s, e in ranges for k in range(s // leaf, (e - 1) // leaf + 1)})

    def _copy_all(self) -> None:
        """Copy every chunk of ``self.work`` not hashed yet, then make them durable."""
        pending: set[Future[tuple[int, bytes, int]]] = set()
        self.ckpt_thread.start()
        try:
            with ThreadPoolExecutor(self.streams, thread_name_prefix="copy") as pool:
                try:
                    self._dispatch(pool, pending)
                    while pending:
                        pending = self._collect(pending, PROGRESS_INTERVAL)
                except BaseException:
                    self._stop_and_drain(pending)
                    try:
                        self._checkpoint(force=True)
                    except Exception:
                        pass  # the original error matters more; unrecorded chunks are recopied
                    raise
            self._finish_run()
        finally:
            self._close_checkpointer()

    def _source_digest(self) -> str:
        hashes = [h for h in self.hashes if h is not None]
        assert len(hashes) == self.n, "every chunk is hashed before a digest is made"
        return combine(hashes, self.chunk_size)

    def _verify_whole(self, verify_reader: DiskReader, source_digest: str) -> str:
        """The target's digest; raises DigestMismatch when it differs from the source's.

        Chunks read back while the copy ran keep that record; the others (resumed, or holes)
        are decided by the target's own extent map: a chunk lying in its holes reads as zeros
        and takes the zero record unread, any other is read back and hashed now.
        """
        try:
            if not self.verified:
                target_digest = disk_digest_of_reader(
                    verify_reader, self.chunk_size, self.streams, self.size, self.fmt
                )
            else:
                flags = data_chunk_flags(verify_reader.extents(), self.size, self.chunk_size)
                records: list[bytes] = [b""] * self.n
                work = []
                for idx in range(self.n):
                    if idx in self.verified:
                        records[idx] = self.verified[idx]
                    elif flags[idx]:
                        work.append(idx)
                    else:
                        records[idx] = self._zero_record(idx)
                read = chunk_hashes_of_reader(
                    verify_reader, work, self.size, self.chunk_size, self.streams, self.fmt
                )
                for idx, rec in read.items():
                    records[idx] = rec
                target_digest = combine(records, self.chunk_size)
        except Exception as e:
            raise TransferError(
                f"disk {self.disk_id}: reading the target to verify failed: {_describe(e)}",
                self.disk_id,
            ) from e
        if target_digest != source_digest:
            raise DigestMismatch(
                f"disk {self.disk_id}: digest mismatch: source {source_digest},"
                f" target {target_digest}",
                self.disk_id,
            )
        return target_digest

    def _verify_chunks(
        self, verify_reader: DiskReader, indices: list[int], source_digest: str
    ) -> str:
        """Re-read ``indices`` from the target; the disk's target digest takes the others'
        recorded hashes.  Raises DigestMismatch naming the first chunk that differs."""
        try:
            read = chunk_hashes_of_reader(
                verify_reader, indices, self.size, self.chunk_size, self.streams, self.fmt
            )
        except Exception as e:
            raise TransferError(
                f"disk {self.disk_id}: reading the target to verify failed: {_describe(e)}",
                self.disk_id,
            ) from e
        target_digest = combine(
            [read.get(i, h) for i, h in enumerate(self.hashes) if h is not None], self.chunk_size
        )
        bad = [i for i in indices if read[i] != self.hashes[i]]
        if bad:
            raise DigestMismatch(
                f"disk {self.disk_id}: digest mismatch: {len(bad)} of the round's chunks differ"
                f" on the target, the first at offset {bad[0] * self.chunk_size}:"
                f" source {source_digest}, target {target_digest}",
                self.disk_id,
                bad[0] * self.chunk_size,
            )
        return target_digest

    def _verify_leaves(
        self, verify_reader: DiskReader, plan: dict[int, list[int] | None], source_digest: str
    ) -> str:
        """Re-read what a round wrote: the touched leaves of each of its chunks (all leaves of
        a chunk written whole), compare their hashes with the records; the other leaves and
        chunks keep their recorded hashes, which earlier rounds verified.  Raises
        DigestMismatch naming the first leaf that differs."""
        leaf = self.leaf
        items = []
        for idx, leaves in sorted(plan.items()):
            length = chunk_length(idx, self.size, self.chunk_size)
            for k in range((length + leaf - 1) // leaf) if leaves is None else leaves:
                items.append((idx, k, min(leaf, length - k * leaf)))

        def one(item: tuple[int, int, int]) -> tuple[int, int, bytes]:
            idx, k, n = item
            offset = idx * self.chunk_size + k * leaf
            data = verify_reader.read(offset, n)
            if len(data) != n:
                raise OSError(f"short read at offset {offset}: {len(data)} of {n} bytes")
            return idx, k, self.fmt.leaf_hash(data, 0, n)

        target = {i: record_leaves(h) for i, h in enumerate(self.hashes) if h is not None}
        bad: list[int] = []
        try:
            with ThreadPoolExecutor(self.streams, thread_name_prefix="verify") as pool:
                for idx, k, h in bounded_map(pool, one, items, self.streams * 4):
                    if target[idx][k] != h:
                        bad.append(idx * self.chunk_size + k * leaf)
                        target[idx] = [*target[idx]]
                        target[idx][k] = h
        except Exception as e:
            raise TransferError(
                f"disk {self.disk_id}: reading the target to verify failed: {_describe(e)}",
                self.disk_id,
            ) from e
        target_digest = combine(
            (self.fmt.of_leaves(target[i]) for i in sorted(target)), self.chunk_size
        )
        if bad:
            first = min(bad)
            raise DigestMismatch(
                f"disk {self.disk_id}: digest mismatch: {len({b // self.chunk_size for b in bad})}"
                f" of the round's chunks differ on the target ({len(bad)} {leaf}-byte pieces),"
                f" the first at offset {first}:"
                f" source {source_digest}, target {target_digest}",
                self.disk_id,
                first,
            )
        return target_digest

    def _result(
        self, source_digest: str, target_digest: str, round_no: int, touched: int
    ) -> CopyResult:
        return CopyResult(
            source_digest,
            target_digest,
            self.bytes_written,
            self.resumed_chunks,
            self.n,
            time.monotonic() - self.t0,
            round_no,
            touched,
        )

    def _canceled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _dispatch(
        self,
        pool: ThreadPoolExecutor,
        pending: set[Future[tuple[int, bytes, int]]],
    ) -> None:
        """Walk the chunks in order: zero ones finish here, data ones go to the workers."""
        max_inflight = self.streams * 2  # bounded: never a queue of buffers waiting to be written
        for idx in self.work:
            if self.hashes[idx] is not None:
                continue
            if self._canceled():
                self.stop.set()
            if self.stop.is_set():
                break
            if self.flags is not None and not self.flags[idx]:
                length = chunk_length(idx, self.size, self.chunk_size)
                self.hashes[idx] = self._zero_record(idx)
                self.bytes_done += length
                self._report()
                continue
            while len(pending) >= max_inflight and not self.stop.is_set():
                pending -= set(self._drain_done(pending, PROGRESS_INTERVAL))
            if self.stop.is_set():
                break
            pending.add(pool.submit(self._budgeted, idx))

    def _drain_done(
        self, pending: set[Future[tuple[int, bytes, int]]], timeout: float
    ) -> set[Future[tuple[int, bytes, int]]]:
        """Process what finished within ``timeout``; returns the futures that were handled."""
        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in done:
            self._take(fut)
        if self._canceled():
            self.stop.set()
        if not self.stop.is_set():
            self._checkpoint()
        self._report()
        return done

    def _collect(
        self, pending: set[Future[tuple[int, bytes, int]]], timeout: float
    ) -> set[Future[tuple[int, bytes, int]]]:
        if self.stop.is_set():
            for fut in pending:
                fut.cancel()
        return pending - self._drain_done(pending, timeout)

    def _take(self, fut: Future[tuple[int, bytes, int]]) -> None:
        try:
            idx, h, nbytes = fut.result()
        except (_Skipped, CancelledError):
            return
        except _ChunkError as e:
            if self.failure is None or e.offset < self.failure.offset:
                self.failure = e
            self.stop.set()
            return
        if self.hashes[idx] is not None:  # taken already (an error interrupted a drain)
            return
        self.hashes[idx] = h
        self.unrecorded.append((idx, h, nbytes))
        self.unflushed_bytes += nbytes
        self.bytes_written += nbytes
        self.bytes_done += chunk_length(idx, self.size, self.chunk_size)

    def _stop_and_drain(self, pending: set[Future[tuple[int, bytes, int]]]) -> None:
        """Stop starting chunks and wait for the running ones, keeping what they finished."""
        self.stop.set()
        for fut in pending:
            fut.cancel()
        for fut in pending:
            try:
                fut.exception()  # waits
            except CancelledError:
                continue
            self._take(fut)
        pending.clear()

    def _checkpoint(self, force: bool = False) -> None:
        """Hand finished chunks to the checkpointer once ~64 MiB or ~1 s have gathered.

        The batch holds only chunks whose writes have returned; the checkpointer flushes the
        writer and only then records them, so the store never claims what is not durable.
        """
        if self.ckpt_error is not None:
            raise TransferError(
                f"disk {self.disk_id}: making the target durable failed:"
                f" {_describe(self.ckpt_error)}",
                self.disk_id,
            ) from self.ckpt_error
        if not self.unrecorded:
            return
        now = time.monotonic()
        if not (
            force
            or self.unflushed_bytes >= CHECKPOINT_BYTES
            or now - self.last_flush >= CHECKPOINT_SECONDS
        ):
            return
        # blocks while two batches wait: backpressure when the target syncs slower than we copy
        self.ckpt_queue.put((self.unrecorded, self.unflushed_bytes > 0))
        self.unrecorded = []
        self.unflushed_bytes = 0
        self.last_flush = now

    def _checkpointer(self) -> None:
        """Thread: flush, then record, batch after batch, so fdatasync never stalls the copy."""
        while True:
            item = self.ckpt_queue.get()
            if item is None:
                return
            if self.ckpt_error is not None:
                continue  # keep draining so the copying thread never blocks on a full queue
            batch, needs_flush = item
            try:
                if needs_flush:
                    self.writer.flush()
                self.store.record_chunks(self.disk_id, batch)
            except BaseException as e:
                self.ckpt_error = e
                self.stop.set()

    def _close_checkpointer(self) -> None:
        """Wait until every handed-over batch is flushed and recorded (idempotent)."""
        if self.ckpt_thread.is_alive():
            self.ckpt_queue.put(None)
            self.ckpt_thread.join()

    def _finish_run(self) -> None:
        """After the workers are gone: make the rest durable, then report how the run ended."""
        try:
            self._checkpoint(force=True)
            self._close_checkpointer()
            self._checkpoint()  # raises if the last flush failed
        except TransferError:
            if self.failure is None:
                raise
        if self.failure is not None:
            f = self.failure
            raise TransferError(f"disk {self.disk_id}: {f}", self.disk_id, f.offset) from f.cause
        if any(h is None for h in self.hashes):  # stopped early without an error: canceled
            self._report(force=True)
            raise TransferCanceled(self.disk_id, self.bytes_done)

    def _report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self.last_report < PROGRESS_INTERVAL:
            return
        self.last_report = now
        elapsed = now - self.t0
        rate = (self.bytes_done - self.resumed_bytes) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.bytes_done) / rate if rate > 0 else None
        self.on_progress(
            CopyProgress(
                self.disk_id,
                self.total,
                self.bytes_done,
                self.bytes_written,
                rate,
                eta,
                self.resumed_bytes,
            )
        )

    # -- worker threads ------------------------------------------------------------------

    def _budgeted(self, idx: int) -> tuple[int, bytes, int]:
        """One chunk, holding one of the shared budget's streams while it is copied."""
        copy = self._copy_leaves if idx in self.prev else self._copy_chunk
        if self.budget is None:
            return copy(idx)
        with self.budget:
            return copy(idx)

    def _copy_chunk(self, idx: int) -> tuple[int, bytes, int]:
        """Read, hash and write one chunk; returns (index, hash, bytes written)."""
        if self.stop.is_set() or self._canceled():
            raise _Skipped
        offset = idx * self.chunk_size
        length = chunk_length(idx, self.size, self.chunk_size)
        if idx in self.changed:
            data: bytes | bytearray = self._merged(idx, offset, length)
        else:
            data = self._read_into(self.reader, offset, length, "read", "source")
        runs = self.ranges.get(idx)
        if runs is None and idx in self.changed:  # a round's chunk over blank target space
            runs = _sparse_runs(data, self.changed[idx][1], self.block)
        if is_zero(data):
            if runs is None or not runs:
                return idx, self._zero_record(idx), 0  # the target already reads as zeros
        h = self._record(data)
        written = 0
        view = memoryview(data)
        for start, end in fine_runs(data) if runs is None else runs:
            try:
                self.writer.write(offset + start, view[start:end])
            except Exception as e:
                raise _ChunkError(offset + start, end - start, "write", e) from e
            written += end - start
        if self.inline_verify is not None and written:
            self.verified[idx] = self._read_back_record(self.inline_verify, offset, length)
        return idx, h, written

    def _copy_leaves(self, idx: int) -> tuple[int, bytes, int]:
        """A round's chunk in the tree format: read the changed ranges from the source, write
        exactly them (over blank target space, their zero blocks stay holes), and re-hash only
        the leaves they touch; each leaf's unchanged rest comes from the target (``base``), or
        is zeros where the leaf held none, or is read from the source without a base."""
        if self.stop.is_set() or self._canceled():
            raise _Skipped
        offset = idx * self.chunk_size
        length = chunk_length(idx, self.size, self.chunk_size)
        prev = self.prev[idx]
        leaves = record_leaves(prev if prev is not None else self._zero_record(idx))
        leaf = self.leaf
        ranges = self.changed[idx][1]

        def blank(k: int) -> bool:
            return leaves[k] == self.fmt.zero_hash(min(leaf, length - k * leaf))

        reads = ranges
        if self.base is None:  # the rest of a held leaf comes from the source: read it at once
            reads = _coalesce(
                [
                    (
                        s if blank(s // leaf) else s // leaf * leaf,
                        e if blank((e - 1) // leaf) else min(length, -(-e // leaf) * leaf),
                    )
                    for s, e in ranges
                ]
            )
        parts = [(s, e, self._read(self.reader, offset + s, e - s, "read")) for s, e in reads]

        runs: list[tuple[int, int]] = []
        for s, e in ranges:
            data = self._piece(parts, s, e)
            pos = s
            while pos < e:
                k = pos // leaf
                stop = min(e, (k + 1) * leaf)
                if blank(k):
                    got = _sparse_runs(data, [(pos - s, stop - s)], self.block)
                    runs += [(a + s, b + s) for a, b in got]
                else:
                    runs.append((pos, stop))
                pos = stop
        written = 0
        for start, end in _coalesce(runs):
            piece = self._piece(parts, start, end)
            try:
                self.writer.write(offset + start, piece)
            except Exception as e:
                raise _ChunkError(offset + start, end - start, "write", e) from e
            written += end - start
        new = list(leaves)
        for k in self._touched_leaves(idx, ranges) or ():
            a, b = k * leaf, min(length, (k + 1) * leaf)
            if any(s <= a and b <= e for s, e, _ in parts):
                buf: bytes | bytearray = self._piece(parts, a, b)
            else:
                if blank(k):
                    buf = bytearray(b - a)
                elif self.base is not None:
                    buf = bytearray(self._read(self.base, offset + a, b - a, "read of the target"))
                else:
                    buf = bytearray(self._read(self.reader, offset + a, b - a, "read"))
                for s, e, data in parts:
                    lo, hi = max(s, a), min(e, b)
                    if lo < hi:
                        buf[lo - a : hi - a] = memoryview(data)[lo - s : hi - s]
            new[k] = self.fmt.leaf_hash(buf, 0, b - a)
        return idx, self.fmt.of_leaves(new), written

    @staticmethod
    def _piece(parts: list[tuple[int, int, bytes]], start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a chunk, from the source ranges read (they cover it)."""
        for s, e, data in parts:
            if s <= start and end <= e:
                return data if (s, e) == (start, end) else data[start - s : end - s]
        raise AssertionError(f"[{start}, {end}) is not inside one changed range")

    def _merged(self, idx: int, offset: int, length: int) -> bytes:
        """A round's chunk as the source holds it now: the changed ranges read from the
        source, over what the target holds (zeros where the chunk held no data)."""
        was_zero, areas = self.changed[idx]
        if was_zero:
            buf = bytearray(length)
        else:
            assert self.base is not None, "run_round merges held chunks only with a base"
            buf = bytearray(self._read(self.base, offset, length, "read of the target"))
        for start, end in areas:
            buf[start:end] = self._read(self.reader, offset + start, end - start, "read")
        return bytes(buf)

    def _read_back_record(self, reader: DiskReader, offset: int, length: int) -> bytes:
        """The record of what the target holds at ``[offset, offset + length)``: hashed
        where its pages lie when the target can map them (no copy), else read into this
        thread's verify buffer."""
        op = "read of the target to verify"
        mapped = getattr(reader, "mapped", None)
        if mapped is None:
            return self._record(self._read_into(reader, offset, length, op, "verify"))
        try:
            with mapped(offset, length) as view:
                if len(view) != length:
                    raise OSError(f"short read: {len(view)} of {length} bytes")
                return self._record(view)
        except Exception as e:
            raise _ChunkError(offset, length, op, e) from e

    def _read_into(
        self, reader: DiskReader, offset: int, length: int, op: str, slot: str
    ) -> bytes | bytearray:
        """``reader.read``, but into a buffer this worker thread reuses chunk after chunk
        (``slot`` names which) when the reader can ``readinto``: no allocation, no page
        faults, no copy.  The buffer is valid until this thread reads into it again, which is
        after the chunk was written and hashed (writers copy or write what they are given)."""
        readinto = getattr(reader, "readinto", None)
        if readinto is None or length != self.chunk_size:
            return self._read(reader, offset, length, op)
        buf = getattr(self.buffers, slot, None)
        if buf is None or len(buf) != length:
            buf = bytearray(length)
            setattr(self.buffers, slot, buf)
        try:
            got = readinto(offset, buf)
        except Exception as e:
            raise _ChunkError(offset, length, op, e) from e
        if got != length:
            raise _ChunkError(offset, length, op, OSError(f"short read: {got} of {length} bytes"))
        return buf

    @staticmethod
    def _read(reader: DiskReader, offset: int, length: int, op: str) -> bytes:
        try:
            data = reader.read(offset, length)
        except Exception as e:
            raise _ChunkError(offset, length, op, e) from e
        if len(data) != length:
            raise _ChunkError(
                offset, length, op, OSError(f"short read: {len(data)} of {length} bytes")
            )
        return data


def _format_or_none(record: bytes) -> DigestFormat | None:
    try:
        return record_format(record)
    except ValueError:
        return None


def _resume_format(records: Iterable[bytes]) -> DigestFormat:
    """The format a full copy resumes in: the tree format its records were made in (a copy
    begun by an older version is finished in that version's format, nothing recopied), else
    the default.  Records of the flat format are recopied, as are any of an unknown one."""
    for rec in records:
        fmt = _format_or_none(rec)
        if fmt is not None and fmt.tree:
            return fmt
    return DEFAULT


def _round_format(records: Iterable[bytes]) -> DigestFormat:
    """The format a precopy round keeps: that of the disk's records (the flat format if any
    record is flat); a disk without any record of data takes the default."""
    kinds = {record_format(rec) for rec in records}
    if len(kinds) > 1:
        raise ValueError("chunk records of two digest formats on one disk")
    return kinds.pop() if kinds else DEFAULT


def _source_block(reader: DiskReader, ranges: Iterable[list[tuple[int, int]]]) -> int:
    """The block size zero pieces of changed areas are skipped at: the reader's own
    ``block_size`` if it has one, else 4 KiB, or 512 when the areas are not 4 KiB-aligned."""
    own = getattr(reader, "block_size", 0)
    if isinstance(own, int) and own > 0:
        return own
    if all(s % SOURCE_BLOCK == 0 for rs in ranges for s, _e in rs):
        return SOURCE_BLOCK
    return 512


def _sparse_runs(
    data: bytes, ranges: Sequence[tuple[int, int]], block: int
) -> list[tuple[int, int]]:
    """The non-zero ``block``-sized pieces of ``data`` inside ``ranges`` (where the target
    reads as zeros already: what must be written of a changed area there)."""
    out: list[tuple[int, int]] = []
    for s, e in ranges:
        out += nonzero_runs(data, block, s, e)
    return _coalesce(out)


def _coalesce(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(runs):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


FINE_BLOCK = 4096  # the edges of data runs are trimmed to this: holes stay holes as qemu's


def fine_runs(data: bytes | bytearray) -> list[tuple[int, int]]:
    """The pieces of a data chunk to write: all but its zero 4 KiB blocks, so data that
    starts or ends inside a 64 KiB block (a 4 KiB-aligned file, an extent's edge) allocates on
    the target no more than ``qemu-img convert`` (which skips zero 4 KiB blocks) does.
    A chunk without 4 KiB of zeros in a row anywhere (``find``, at memory speed) is one run."""
    n = len(data)
    if n % FINE_BLOCK == 0 and data.find(zeros(FINE_BLOCK)) < 0:
        return [(0, n)]
    return nonzero_runs(data, FINE_BLOCK)


def nonzero_runs(
    data: bytes, block: int = SPARSE_BLOCK, start: int = 0, end: int | None = None
) -> list[tuple[int, int]]:
    """``(start, end)`` ranges of ``data`` to write, leaving out all-zero ``block``-sized pieces.

    Only ``data[start:end]`` is looked at (default: all of it).  This keeps the target sparse
    where a data chunk only partly holds data (region edges, zeroed files).  ``startswith`` at
    an offset is a memcmp without copying a slice, and stops
    at the first non-zero byte, so real data costs a few comparisons per chunk.
    """
    runs: list[tuple[int, int]] = []
    zero_block = zeros(block)
    n = len(data) if end is None else end
    run_start = -1
    for pos in range(start, n, block):
        stop = min(pos + block, n)
        if data.startswith(zero_block if stop - pos == block else zeros(stop - pos), pos):
            if run_start >= 0:
                runs.append((run_start, pos))
                run_start = -1
        elif run_start < 0:
            run_start = pos
    if run_start >= 0:
        runs.append((run_start, n))
    return runs
