"""The one status writer of a pass: events make status stale, its own thread commits it.

The pipeline never commits or pushes.  It emits events; this writer, subscribed to them, notes
that status is stale and when it is due -- at once for a transition (a VM paused or ended, a
Migration ended), at the ``statusCommitSeconds`` pace for steps, and no more than once a
second for copy progress -- and a thread of its own renders the files, commits and pushes them
(the checkout fetches, rebases and retries with backoff).  A slow, racing or unreachable remote
delays status, never a copy: a write that fails is tried again later, with a backoff of its own,
and the pass's final write (:meth:`StatusWriter.close`) runs in the caller's thread and raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from reconciler.gitops import GitOpsError
from reconciler.progress.events import Event, Kind
from reconciler.status.projection import Snapshot, commit_message, render

log = logging.getLogger(__name__)

PROGRESS_PACE = 1.0  # seconds: copy progress alone is committed no more often than this
RETRY_BACKOFF = 1.0  # seconds before a failed write is tried again; doubles, up to the cap
RETRY_BACKOFF_MAX = 60.0


class StatusCheckout(Protocol):
    """What the writer needs of the git checkout."""

    @property
    def path(self) -> Path: ...

    def write_status(self, files: dict[str, str | None], message: str) -> str | None: ...

    def status_pending(self) -> bool: ...


class StatusWriter:
    """Commits the status a ``snapshot`` renders, in its own thread, when events say so.

    ``on_commit`` runs (in the writer's thread) after each pushed commit: the pass reads the
    freshly rebased checkout there to notice a cancel pushed mid-copy.
    """

    def __init__(
        self,
        checkout: StatusCheckout,
        snapshot: Callable[[], Snapshot],
        interval: float,
        *,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checkout = checkout
        self.snapshot = snapshot
        self.interval = max(0.0, interval)
        self.on_commit = on_commit
        self.clock = clock
        self.commits = 0
        self.failures = 0  # writes in a row that git refused (reset by one that worked)
        self._cond = threading.Condition()
        self._due: float | None = None  # when stale status should be written; None: not stale
        self._retry_at = 0.0  # no write before this after a failure
        self._last = float("-inf")  # when the last write began
        self._closing = False
        self._write_lock = threading.Lock()  # one render-commit-push at a time
        self._unpushed = False  # a write failed: a commit may wait in the checkout
        self._thread: threading.Thread | None = None

    # -- fed by the pass ----------------------------------------------------------------------

    def start(self) -> StatusWriter:
        """Start the writer's thread; status is written once at once (the pass's decisions)."""
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()
        self.stale(urgent=True)
        return self

    def __call__(self, event: Event) -> None:
        """An event subscriber: never waits for git."""
        if event.transition:
            self.stale(urgent=True)
        elif event.kind is Kind.DISK:
            self.stale(pace=max(self.interval, PROGRESS_PACE))
        else:
            self.stale()

    def stale(self, urgent: bool = False, pace: float | None = None) -> None:
        """Status no longer says what the store holds: write it when due (``urgent``: now)."""
        with self._cond:
            wanted = (
                self.clock() if urgent else self._last + (self.interval if pace is None else pace)
            )
            wanted = max(wanted, self._retry_at)
            if self._due is None or wanted < self._due:
                self._due = wanted
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread (an in-flight write finishes first) and write status once more in
        this thread; a refusal by git raises :class:`GitOpsError` here, the pass's end."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        self.write()

    # -- the writing ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing:
                    if self._due is not None:
                        left = self._due - self.clock()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    else:
                        self._cond.wait()
                if self._closing:
                    return
                self._due = None
            try:
                self.write()
            except GitOpsError as exc:
                with self._cond:
                    self.failures += 1
                    backoff = min(RETRY_BACKOFF * 2 ** (self.failures - 1), RETRY_BACKOFF_MAX)
                    self._retry_at = self.clock() + backoff
                log.warning("status commit deferred %.0fs, the copies go on: %s", backoff, exc)
                self.stale()  # what it would have written is still unwritten
            except Exception:  # noqa: BLE001 - a bug in rendering must not end the writer
                log.exception("status not written")
            else:
                with self._cond:
                    self.failures, self._retry_at = 0, 0.0

    def write(self) -> bool:
        """Render and commit status now, in this thread; True when a commit was pushed."""
        with self._write_lock:
            with self._cond:
                self._last = self.clock()
            snap = self.snapshot()
            files = render(snap)
            old = _read_status(self.checkout.path)
            changes: dict[str, str | None] = {p: c for p, c in files.items() if old.get(p) != c}
            changes.update({p: None for p in old if p not in files})
            if not changes and not self._unpushed and not self.checkout.status_pending():
                return False  # the remote has it all (a status commit waiting must go out)
            try:
                sha = self.checkout.write_status(changes, commit_message(old, files, snap))
            except GitOpsError:
                self._unpushed = True  # the commit may wait in the checkout: push it next time
                raise
            self._unpushed = False
            if not sha:
                return False
            self.commits += 1
        self.on_commit()
        return True


def _read_status(root: Path) -> dict[str, str]:
    status = root / "status"
    if not status.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted(status.rglob("*.yaml"))
        if p.is_file()
    }
