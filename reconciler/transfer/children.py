"""Helper processes that die with the reconciler, and the leftovers of those that did not.

A reader's helper (qemu-nbd serving a disk) must not outlive the process that reads from it: a
``kill -9`` or an OOM kill leaves no chance to stop it, and an orphan keeps the source image open
for good. Each child gets a parent-death signal (``setpriv --pdeathsig KILL``). Linux sends it
when the *thread* that forked the child ends, so every child is forked by one thread that lives
as long as the process: a copy's worker thread that starts a helper and then ends must not take
the helper with it.

A process killed while it set up a helper can still leave its private folder behind; the folder
names carry the owner's pid, and :func:`sweep` removes those of dead owners, with any process
still serving from them.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

_SETPRIV = shutil.which("setpriv")


class _Spawner:
    """The one long-lived thread that forks every helper process."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[list[str], dict[str, Any], Future]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], kwargs: dict[str, Any]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="mtv-gitops-spawner", daemon=True
                )
                self._thread.start()
        done: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((cmd, kwargs, done))
        return done.result()

    def _run(self) -> None:
        while True:
            cmd, kwargs, done = self._jobs.get()
            try:
                done.set_result(subprocess.Popen(cmd, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.set_exception(exc)


_spawner = _Spawner()


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(cmd, **kwargs)`` for a child that is killed when this process dies."""
    if _SETPRIV:
        cmd = [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
    return _spawner.popen(cmd, kwargs)


def private_folder(prefix: str, parent: str | None = None) -> str:
    """A new temporary folder whose name says which process owns it (see :func:`sweep`)."""
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)


def sweep(prefix: str, parent: str | None = None) -> list[str]:
    """Remove the private folders of dead owners (made by :func:`private_folder` with
    ``prefix``) and kill processes still running from them; returns the folders removed.

    Folders of a live owner are left alone: another reconciler, or a test, may be using them.
    """
    root = Path(parent or tempfile.gettempdir())
    removed = []
    for folder in sorted(root.glob(f"{prefix}*")):
        owner = folder.name[len(prefix) :].split("-", 1)[0]
        if owner.isdigit() and (int(owner) == os.getpid() or _alive(int(owner))):
            continue
        if not owner.isdigit() and _users(folder) and not _orphaned(_users(folder)):
            continue  # an older version's folder, still served by a live reader
        for pid in _users(folder):
            _kill(pid)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(str(folder))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _users(folder: Path) -> list[int]:
    """Processes whose command line names the folder (a helper serving a socket in it)."""
    needle = str(folder).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _orphaned(pids: list[int]) -> bool:
    """Whether every one of these processes has lost its parent (re-parented to init)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid != 1:
            return False
    return True


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
