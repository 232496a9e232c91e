"""The daemon: a push starts work at once (watchdog on the clone), its own commits start none."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.support.workspace import CLI, ProcessOutput, migration_yaml, small_vm, wait_until

pytestmark = pytest.mark.integration


def _start_daemon(ws) -> subprocess.Popen:
    args = ["daemon", str(ws.clone), "--interval", "30", "--state-dir", str(ws.state)]
    return subprocess.Popen(
        [*CLI, *args, "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_daemon_reacts_to_pushes_and_ignores_its_own_commits(workspace_factory) -> None:
    ws = workspace_factory([small_vm("daemon-vm", 1)])
    ws.user_commit({"migrations/demo-plan-1.yaml": None}, "not yet")
    proc = _start_daemon(ws)
    out = ProcessOutput(proc)
    try:
        wait_until(lambda: out.passes() >= 1)
        time.sleep(2)
        idle = out.passes()
        assert idle == 1, "\n".join(out.lines)  # its own status commit started no pass

        # the user pushes a Migration from the watched clone: picked up well before --interval
        start = time.monotonic()
        ws.user_commit(
            {"migrations/demo-plan-1.yaml": migration_yaml("demo-plan-1", "demo-plan")}, "go"
        )
        wait_until(
            lambda: (
                (ws.remote_file("status/migration/openshift-mtv/demo-plan-1.yaml") or "").count(
                    "Succeeded"
                )
                > 0
            ),
            timeout=25,
        )
        assert time.monotonic() - start < 25
        wait_until(lambda: out.passes() >= 2)  # the pass that ran it has printed its summary
        settled = out.passes()
        time.sleep(2)
        assert out.passes() == settled  # idle again: no loop on its own status commits
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, "\n".join(out.lines)


def test_sigterm_mid_copy_pauses_the_vm_and_a_restart_finishes_it(workspace_factory) -> None:
    from tests.support.workspace import chunks_done, throttle

    ws = workspace_factory([small_vm("patient", 7, data_mib=48, capacity_mib=128)])
    throttle(ws, 16)
    proc = _start_daemon(ws)
    out = ProcessOutput(proc)
    wait_until(lambda: chunks_done(ws) >= 3)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 0, "\n".join(out.lines)
    plan = ws.status("plan", "demo-plan")["status"]
    [vm] = plan["migration"]["vms"]
    assert vm["phase"] == "CopyDisks"  # paused, not failed or canceled
    assert "error" not in vm
    ws.reconcile(check=True)
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed"
