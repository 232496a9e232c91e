"""The daemon: a push starts work at once (watchdog on the clone), its own commits start none."""

from __future__ import annotations

import os
import signal
import subprocess

import git
import pytest

from tests.support.workspace import (
    CLI,
    ProcessOutput,
    chunks_done,
    last_read,
    migration_yaml,
    small_vm,
    throttle,
    unthrottle,
    wait_until,
)

pytestmark = pytest.mark.integration


def _start_daemon(ws, interval: int = 3600) -> subprocess.Popen:
    """The daemon, polling the remote every *interval* s (by default never, within a test: a
    pass it runs was started by a push it saw, or by work left)."""
    args = ["daemon", str(ws.clone), "--interval", str(interval), "--state-dir", str(ws.state)]
    return subprocess.Popen(
        [*CLI, *args, "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _looked_at_remote_head(ws) -> bool:
    """Fetch in the user's clone (the watched refs move when the remote did, which wakes the
    daemon) and say whether the daemon has read the remote's head since."""
    git.Repo(ws.clone).git.fetch("origin")
    return last_read(ws) == git.Repo(ws.remote).commit("main").hexsha


def test_daemon_reacts_to_pushes_and_ignores_its_own_commits(workspace_factory) -> None:
    """No step waits on time: the interval is an hour, so the work is started by the pushes the
    watcher sees; "no pass on its own commits" is read from what the daemon did once it had
    looked at them (the revision it recorded, then every line it printed up to its exit)."""
    ws = workspace_factory([small_vm("daemon-vm", 1)])
    ws.user_commit({"migrations/demo-plan-1.yaml": None}, "not yet")
    proc = _start_daemon(ws)
    out = ProcessOutput(proc)
    try:
        wait_until(lambda: out.passes() >= 1)
        wait_until(lambda: _looked_at_remote_head(ws))  # it has seen its own status commit
        assert out.passes() == 1, "\n".join(out.lines)

        # the user pushes a Migration from the watched clone: picked up without the interval
        ws.user_commit(
            {"migrations/demo-plan-1.yaml": migration_yaml("demo-plan-1", "demo-plan")}, "go"
        )
        wait_until(
            lambda: (
                "Succeeded"
                in (ws.remote_file("status/migration/openshift-mtv/demo-plan-1.yaml") or "")
            )
        )
        wait_until(lambda: out.passes() >= 2)  # the pass that ran it has printed its summary
        wait_until(lambda: _looked_at_remote_head(ws))  # and it has seen its status commits
        settled = out.passes()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    out.finish()
    assert proc.returncode == 0, "\n".join(out.lines)
    assert out.passes() == settled, "\n".join(out.lines)  # no pass on its own status commits


def test_sigterm_mid_copy_pauses_the_vm_and_a_restart_finishes_it(workspace_factory) -> None:
    ws = workspace_factory([small_vm("patient", 7, data_mib=48, capacity_mib=128)])
    throttle(ws, 2)  # 24 s of copying: the stop lands in it however late the test reacts
    proc = _start_daemon(ws)
    out = ProcessOutput(proc)
    wait_until(lambda: chunks_done(ws) >= 3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 0, "\n".join(out.lines)
    plan = ws.status("plan", "demo-plan")["status"]
    [vm] = plan["migration"]["vms"]
    assert vm["phase"] == "CopyDisks"  # paused, not failed or canceled
    assert "error" not in vm
    unthrottle(ws)
    ws.reconcile(check=True)
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed"
