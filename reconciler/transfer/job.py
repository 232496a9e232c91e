"""What a transfer Job's process does with a ``TransferRequest``: open the source disk, run the
engine with its checkpoints beside the output, report as ``reconciler.transfer.report`` says
(progress lines on stdout, the outcome in the termination message, an exit code that tells
Kubernetes whether another attempt can help).

Layering: this package sits below sources, secrets and the plugin manager, so the runtime does
not connect to the source itself. Its caller (the ``transfer`` command) passes ``connect``,
which resolves the credentials and asks the plugin manager for a connection shaped as
``JobSource``; a connection that cannot serve the request (a secret missing, no snapshots for a
warm copy) raises ``Refused``.

``copy`` is the engine call both targets make: the local target in process, this runtime in
a Job.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from reconciler.progress.checkpoints import CheckpointStore
from reconciler.progress.db import Database
from reconciler.progress.lock import StateLock
from reconciler.transfer import report
from reconciler.transfer.digest import disk_digest_of_reader, format_of_digest
from reconciler.transfer.engine import (
    CopyProgress,
    CopyResult,
    DigestMismatch,
    StreamBudget,
    TransferCanceled,
    TransferError,
    copy_changes,
    copy_disk,
)
from reconciler.transfer.extents import DiskReader, DiskWriter, Extent
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter
from reconciler.transfer.request import DiskCopy, TransferRequest
from reconciler.transfer.throttle import ThrottledReader

DEFAULT_CHECKPOINTS = ".mtv-gitops-transfer.db"  # beside a disk.img on a Filesystem PVC


class JobSource(Protocol):
    """The source as the runtime reads it (a source plugin's connection; a warm one when
    the request names a snapshot)."""

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str = "") -> DiskReader: ...

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]: ...

    def close(self) -> None: ...


class Refused(Exception):
    """The source cannot serve the request and no other attempt can help."""


class Failure(Exception):
    """A transfer that did not copy: the exit code and the reason reported for it."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def copy(
    disk: DiskCopy,
    reader: DiskReader,
    writer: DiskWriter,
    store: CheckpointStore,
    disk_id: str,
    *,
    changed: Sequence[Extent] | None,
    on_progress: Callable[[CopyProgress], None] | None,
    cancel: threading.Event,
    verify_reader: DiskReader | None,
    base_reader: DiskReader | None,
    budget: StreamBudget | None = None,
) -> CopyResult:
    """The whole disk, or a precopy round's ``changed`` areas (``disk.round``) onto what earlier
    rounds left, the unchanged rest of a touched chunk read from ``base_reader``; ``budget``:
    streams shared with the other disks copied at once."""
    if disk.max_bytes_per_second:
        reader = ThrottledReader(reader, disk.max_bytes_per_second)
    if disk.round:
        return copy_changes(
            reader,
            writer,
            store,
            disk_id,
            list(changed or ()),
            round=disk.round,
            change_id=disk.change_id,
            chunk_size=disk.chunk_size,
            streams=disk.streams,
            on_progress=on_progress,
            cancel=cancel,
            verify_reader=verify_reader,
            base_reader=base_reader,
            budget=budget,
        )
    return copy_disk(
        reader,
        writer,
        store,
        disk_id,
        chunk_size=disk.chunk_size,
        streams=disk.streams,
        on_progress=on_progress,
        cancel=cancel,
        verify_reader=verify_reader,
        change_id=disk.change_id,
        budget=budget,
    )


def main(
    request: TransferRequest,
    connect: Callable[[TransferRequest], JobSource],
    expected: tuple[type[BaseException], ...] = (),
) -> int:
    """The Job's process: run the request, stop at a durable point on SIGTERM (the pod is
    deleted), write the outcome; returns the exit code. ``expected`` are the errors whose own
    message says enough (a source's), others are reported with their type."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        result = run(request, connect, stop, expected)
    except Failure as exc:
        _err(f"error {exc}")
        _write_termination(request.termination_log, report.failure_message(exc.reason, str(exc)))
        return exc.code
    text = report.success_message(result)
    _out(text)
    _write_termination(request.termination_log, text)
    return 0


def run(
    request: TransferRequest,
    connect: Callable[[TransferRequest], JobSource],
    stop: threading.Event,
    expected: tuple[type[BaseException], ...] = (),
) -> CopyResult:
    """The copy itself; every failure becomes a Failure with its exit code and reason."""
    disk, output = request.copy, request.output
    checkpoints = request.checkpoints
    scratch = None
    if checkpoints is None:
        if _is_device(output):
            scratch = tempfile.TemporaryDirectory()
            checkpoints = Path(scratch.name) / DEFAULT_CHECKPOINTS
            _err(f"note {output} is a device and no --checkpoints given: no resume")
        else:
            checkpoints = output.parent / DEFAULT_CHECKPOINTS
    disk_id = f"{request.provider}/{disk.vm_id}/{disk.disk_key}"
    conn = reader = writer = verify_reader = base_reader = store = None
    last = 0.0
    # one writer per output and checkpoints: a second transfer into them (a retried Job's pod
    # while the first still ends, two commands by hand) waits for the first to let go
    lock = StateLock(
        checkpoints.parent,
        path=checkpoints.with_name(checkpoints.name + ".lock"),
        what=f"the output {output}",
        on_wait=lambda text: _err(f"note {text}"),
        stop=stop,
    )

    def progress(p: CopyProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= request.progress_seconds or p.bytes_done >= p.total:
            last = now
            _out(report.progress_line(p))

    try:
        try:
            if not lock.acquire():
                raise TransferCanceled(disk_id, 0)  # stopped while it waited
            conn = connect(request)
            changed = None
            if disk.snapshot_id:
                if disk.round:  # asked before reading: the areas name the round in the store
                    changed = conn.changed_extents(
                        disk.vm_id, disk.snapshot_id, disk.disk_key, disk.since
                    )
                reader = conn.open_disk(disk.vm_id, disk.disk_key, snapshot_id=disk.snapshot_id)
            else:
                reader = conn.open_disk(disk.vm_id, disk.disk_key)
            store = _checkpoint_store(checkpoints)
            if not output.exists() and store.get_disk(disk_id) is not None:
                # the checkpoints outlived the file they describe: resuming from them would
                # report the zeros of a new empty file as the copied disk
                store.reset_disk(disk_id)
                _err(f"note {output} was not there: the recorded copy into it is forgotten")
            writer = RawDiskWriter(output, reader.size)
            verify_reader = RawDiskReader(output) if disk.verify else None
            if changed is not None:
                base_reader = RawDiskReader(output)
            elif verify_reader is not None:
                _ensure_copy_still_held(store, disk_id, verify_reader, disk.streams)
            return copy(
                disk,
                reader,
                writer,
                store,
                disk_id,
                changed=changed,
                on_progress=progress,
                cancel=stop,
                verify_reader=verify_reader,
                base_reader=base_reader,
            )
        finally:
            for closable in (reader, writer, verify_reader, base_reader, conn, store):
                if closable is not None:
                    closable.close()
            lock.release()
            if scratch is not None:
                scratch.cleanup()
    except Refused as exc:
        raise Failure(report.EXIT_FATAL, report.FAILED, str(exc)) from None
    except DigestMismatch as exc:
        _forget(checkpoints, disk_id)
        raise Failure(report.EXIT_FATAL, report.DIGEST_MISMATCH, str(exc)) from None
    except TransferCanceled as exc:
        raise Failure(report.EXIT_FAILED, report.CANCELED, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is a traceback
        if disk_full(exc):
            raise Failure(
                report.EXIT_FATAL, report.DISK_FULL, f"no space left writing {output}: {exc}"
            ) from None
        known = (*expected, TransferError, OSError, sqlite3.Error)
        what = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        raise Failure(report.EXIT_FAILED, report.FAILED, what) from None


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is the target running out of space."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(cur, sqlite3.OperationalError) and "disk is full" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _checkpoint_store(path: Path) -> CheckpointStore:
    """The checkpoints alone (the same database a ProgressStore opens): a Job's process has
    no pipeline, validations or settings to keep, and their modules are start-up time."""
    return CheckpointStore(Database(path))


def _ensure_copy_still_held(
    store: CheckpointStore, disk_id: str, target: RawDiskReader, streams: int
) -> None:
    """A disk recorded as copied is read back before it is reported copied again: an output
    written over since (the same file, other bytes) is copied afresh, not trusted."""
    rec = store.get_disk(disk_id)
    if rec is None or not rec.completed or not rec.target_digest or target.size < rec.size:
        return
    fmt = format_of_digest(rec.target_digest)
    if disk_digest_of_reader(target, rec.chunk_size, streams, rec.size, fmt) == rec.target_digest:
        return
    store.reset_disk(disk_id)
    _err(f"note {target.path} no longer holds the recorded copy: copying it afresh")


def _is_device(path: Path) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def _forget(checkpoints: Path, disk_id: str) -> None:
    """A copy that does not read back: nothing recorded may be resumed from."""
    try:
        store = _checkpoint_store(checkpoints)
        try:
            store.reset_disk(disk_id)
        finally:
            store.close()
    except (OSError, sqlite3.Error):
        pass  # the reconciler deletes the PVC on a digest mismatch anyway


def _write_termination(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text)
    except OSError as exc:
        _err(f"note cannot write the termination message to {path}: {exc}")


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
