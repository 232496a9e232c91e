"""A real daemon and a real remote for fault tests: the remote moved out of reach and back,
and a daemon whose output lines are read in a thread (waits are for lines, not for time)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from tests.support.workspace import CLI


class RemoteAway:
    """The remote moved out of reach (its path no longer exists) and back."""

    def __init__(self, remote: Path) -> None:
        self.remote = remote
        self.parked = remote.with_name(remote.name + ".away")

    def __enter__(self) -> RemoteAway:
        self.remote.rename(self.parked)
        return self

    def __exit__(self, *exc: object) -> None:
        self.back()

    def back(self) -> None:
        if self.parked.exists():
            self.parked.rename(self.remote)


class DaemonOutput:
    """The daemon's output lines, read in a thread; waits are for lines, not for time."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip())
                self._cond.notify_all()

    def wait_for(self, pred, what: str, timeout: float = 240) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: pred(self.lines), timeout):
                raise AssertionError(f"never: {what}\n" + "\n".join(self.lines))

    def count(self, text: str) -> int:
        with self._cond:
            return sum(text in line for line in self.lines)


def start_daemon(ws, *, interval: float = 30, env: dict[str, str] | None = None):
    args = ["daemon", str(ws.clone), "--interval", str(interval), "--state-dir", str(ws.state)]
    proc = subprocess.Popen(
        [*CLI, *args, "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    return proc, DaemonOutput(proc)


def stop_daemon(proc: subprocess.Popen, out: DaemonOutput) -> None:
    proc.terminate()
    proc.wait(timeout=60)
    assert proc.returncode == 0, "\n".join(out.lines)
