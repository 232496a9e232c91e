"""One writer per progress store: an exclusive ``flock`` that the kernel drops when we die.

Two reconcilers on one state folder (a cron job beside a manual run, a daemon restarted while
the old one still exits) would both act on the same progress: both run a warm cutover, each
sweeping the other's snapshots. Two transfers into one output would interleave their writes
and checkpoints. The lock makes the second one wait, or refuse. It is a lock on an open file,
so a process killed with SIGKILL frees it at once; the file's text only says who holds it, for
the message the next one prints.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

LOCK_FILE = "lock"
WAIT_STEP = 0.2  # seconds between attempts while waiting (the wait also ends on ``stop``)


class StateBusy(RuntimeError):
    """Another process holds the lock and we were told not to wait."""


class StateLock:
    """Hold ``<folder>/lock`` (or the file ``path`` names) exclusively for as long as the
    ``with`` block runs; ``what`` names what it guards in messages."""

    def __init__(
        self,
        state_dir: Path,
        *,
        wait: bool = True,
        on_wait: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        path: Path | None = None,
        what: str = "",
    ) -> None:
        self.path = Path(path) if path is not None else Path(state_dir) / LOCK_FILE
        self.what = what or f"the state folder {self.path.parent}"
        self.wait = wait
        self.on_wait = on_wait
        self.stop = stop or threading.Event()
        self._fd: int | None = None

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("pid N: command"), or "" if unknown."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def acquire(self) -> bool:
        """Take the lock (waiting if told to); False when ``stop`` was set while waiting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                held_by = self.holder() or "another process"
                if not self.wait:
                    os.close(fd)
                    raise StateBusy(
                        f"{self.what} is in use by {held_by}; wait for it to finish, or run "
                        "with --wait to queue behind it"
                    ) from None
                if not told and self.on_wait is not None:
                    self.on_wait(f"waiting for {self.what}: in use by {held_by}")
                    told = True
                if self.stop.wait(WAIT_STEP):
                    os.close(fd)
                    return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {_command()}\n".encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        if not self.acquire():
            raise StateBusy("stopped while waiting for the state folder")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _command() -> str:
    """``mtv-gitops reconcile``: the subcommand tells a waiting user what runs."""
    return " ".join(["mtv-gitops", *sys.argv[1:2]])
