"""A Migration's outcome counts every VM the progress store holds, not this process's share."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from tests.support.workspace import CLI, small_vm

pytestmark = pytest.mark.integration


def test_after_a_restart_the_migration_counts_both_vms(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("quick", 1, data_mib=1), small_vm("slow", 2, data_mib=32, capacity_mib=64)]
    )
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit(
        {".mtv-gitops.yaml": cfg.replace("verify: true", "verify: true\n  maxMiBps: 2")},
        "slow copies: the second VM is still copying when the first is done",
    )
    proc = subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state),
         "--cluster", str(ws.cluster)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300  # a safety net only: the wait is for the VM's result
    try:
        while _result(ws, "quick") != "Succeeded":
            assert proc.poll() is None, "the reconciler ended before the first VM succeeded"
            assert time.monotonic() < deadline, "the first VM never succeeded"
            time.sleep(0.05)
        assert _result(ws, "slow") == "", "killed too late: the second VM is done"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    ws.reconcile(check=True, timeout=300)
    status = ws.status("migration", "demo-plan-1")["status"]
    succeeded = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["message"] == "2 VM(s) migrated."


def _result(ws, vm_name: str) -> str:
    """A VM's result in the progress store ("" while it runs or before it starts)."""
    db = ws.state / "progress.db"
    if not db.exists():
        return ""
    try:
        with sqlite3.connect(db, timeout=5) as con:
            row = con.execute("SELECT result FROM vms WHERE vm_name = ?", (vm_name,)).fetchone()
    except sqlite3.OperationalError:  # the schema is being created
        return ""
    return row[0] if row else ""
