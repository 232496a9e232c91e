"""One reconciler per state folder; a git of ours killed mid-way never wedges the next one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.progress.lock import StateBusy, StateLock
from tests.support.workspace import CLI, small_vm

pytestmark = pytest.mark.integration


def _reconcile(ws, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state),
         "--cluster", str(ws.cluster), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def _slow(ws) -> None:
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit(
        {".mtv-gitops.yaml": cfg.replace("verify: true", "verify: true\n  maxMiBps: 1")},
        "a copy slow enough to be caught holding the state folder",
    )


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 300  # a safety net: each wait is for an event
    while not predicate():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"ended before {what}: {proc.stdout.read()} {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def test_a_stale_index_lock_is_removed_by_the_next_holder(workspace_factory) -> None:
    ws = workspace_factory([small_vm("one", 1)])
    ws.reconcile(check=True)
    lock = ws.state / "checkout" / ".git" / "index.lock"
    lock.write_text("")  # what a git killed with its process group leaves behind
    ws.user_commit({"notes.md": "a user commit after the crash\n"}, "notes")
    proc = ws.reconcile()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not lock.exists()


def test_a_second_reconciler_waits_or_refuses_and_a_killed_holder_frees_the_folder(
    workspace_factory,
) -> None:
    # 96 MiB at 1 MiB/s: the first holds the folder far longer than two CLI starts take on a
    # busy machine; the throttle goes once the second one waits (the test kills the first)
    ws = workspace_factory([small_vm("held", 1, data_mib=96, capacity_mib=128)])
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    _slow(ws)
    first = _reconcile(ws)
    holder = StateLock(ws.state)
    waiting = None
    try:
        _wait_for(lambda: f"pid {first.pid}:" in holder.holder(), "the first one held it", first)
        assert holder.holder() == f"pid {first.pid}: mtv-gitops reconcile"

        refused = _reconcile(ws, "--no-wait")
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 4
        assert f"in use by pid {first.pid}: mtv-gitops reconcile" in err
        assert "--wait" in err

        waiting = _reconcile(ws)
        line = waiting.stderr.readline()
        assert f"waiting for the state folder {ws.state}: in use by pid {first.pid}" in line
        # the waiting one reads the repo once it holds the folder: it copies unthrottled
        ws.user_commit({".mtv-gitops.yaml": cfg}, "no throttle")

        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, out + err
    finally:
        for p in (first, waiting):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed"
    with pytest.raises(StateBusy):  # nothing holds it now: a no-wait lock is taken at once
        with StateLock(ws.state, wait=False):
            StateLock(ws.state, wait=False).acquire()


def _git_that_stops_holding_the_index(root: Path, checkout: Path) -> tuple[dict[str, str], Path]:
    """A ``git`` first on PATH: the first ``add`` in ``checkout`` runs the real git with an
    fsmonitor hook, which git calls while it holds ``index.lock``; the hook notes that and
    blocks, so the test kills a real git in the middle of its work, lock held."""
    real = shutil.which("git")
    assert real is not None
    marker = root / "inside-git"
    hook = root / "fsmonitor-hook"
    hook.write_text(f"#!/bin/sh\nls {checkout}/.git/index.lock > {marker}.tmp\n"
                    f"mv {marker}.tmp {marker}\nexec sleep 3600\n")  # fmt: skip
    shim_dir = root / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "git"
    shim.write_text(
        "#!/bin/sh\n"
        f'case "$(pwd)/ $* " in {checkout}/*" add "*)\n'
        f"  [ -e {marker}.armed ] || {{ : > {marker}.armed; "
        f'exec {real} -c core.fsmonitor={hook} "$@"; }} ;;\n'
        "esac\n"
        f'exec {real} "$@"\n'
    )
    for script in (hook, shim):
        script.chmod(0o755)
    return {"PATH": f"{shim_dir}:{os.environ['PATH']}"}, marker


def test_a_reconciler_killed_inside_a_git_command_recovers_on_the_next_start(
    workspace_factory,
) -> None:
    """kill -9 of the whole process group while a real git holds the private checkout's index
    lock (what an OOM kill of the pod does): the next start removes the stale lock and ends the
    migration, its status on the remote."""
    ws = workspace_factory([small_vm("caught", 3)])
    checkout = ws.state / "checkout"
    env, marker = _git_that_stops_holding_the_index(ws.root, checkout)
    proc = subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state),
         "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "COLUMNS": "200", **env},
    )  # fmt: skip
    try:
        _wait_for(marker.exists, "a git of the reconciler inside its work", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert marker.read_text().strip() == f"{checkout}/.git/index.lock"  # it held the lock
    assert (checkout / ".git" / "index.lock").exists()

    again = ws.reconcile()
    assert again.returncode == 0, again.stdout + again.stderr
    assert not (checkout / ".git" / "index.lock").exists()
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed", vm
