"""Helper processes die with the reconciler; what a killed run left behind is swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reconciler.transfer import children

pytestmark = pytest.mark.integration

# a reconciler stand-in: starts a helper from a worker thread that then ends, says the helper's
# pid, and waits to be killed
HOLDER = textwrap.dedent(
    """
    import sys, threading, time
    from reconciler.transfer.children import spawn
    procs = []
    t = threading.Thread(target=lambda: procs.append(spawn(["sleep", "600"])))
    t.start(); t.join()
    print(procs[0].pid, flush=True)
    sys.stdin.read()
    """
)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return True
    return state == b"Z"


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _wait_gone(pid: int, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds  # a safety net: the kernel kills it at once
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_helper_outlives_the_thread_that_started_it_but_not_the_process() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        helper = int(holder.stdout.readline())
        # the parent-death signal is set by setpriv before it runs the helper: wait for that
        # (a parent killed before it would leave an orphan for the next start's sweep)
        deadline = time.monotonic() + 120  # a hang guard
        while _comm(helper) != "sleep":
            assert time.monotonic() < deadline and not _gone(helper), _comm(helper)
            time.sleep(0.02)
        # the spawning worker thread has ended; the helper still runs (its parent-death signal
        # belongs to the process's spawner thread, not to the worker)
        assert not _gone(helper)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert _wait_gone(helper), "the helper outlived its killed parent"
    finally:
        holder.kill()
        holder.wait()


def test_sweep_removes_a_dead_owners_folder_and_its_orphan_server(tmp_path: Path) -> None:
    gone_pid = _ended_pid()
    folder = tmp_path / f"mtv-test-nbd-{gone_pid}-abc"
    folder.mkdir()
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\0" * 1024 * 1024)
    sock = folder / "nbd0.sock"
    orphan = subprocess.Popen(
        ["qemu-nbd", "--read-only", "-f", "raw", f"--socket={sock}", str(image)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    mine = Path(children.private_folder("mtv-test-nbd-", str(tmp_path)))
    try:
        removed = children.sweep("mtv-test-nbd-", str(tmp_path))
        assert removed == [str(folder)]
        assert not folder.exists()
        orphan.wait(timeout=60)  # killed by the sweep, or this times out
        assert mine.exists(), "a live owner's folder (this process's) must be left alone"
    finally:
        orphan.kill()
        orphan.wait()
        mine.rmdir()


def _ended_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
