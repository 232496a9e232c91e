"""The pass runs VMs at once in threads: a shutdown pauses every one of them, queued VMs stay
Pending without having started, and the next start resumes them all (in process, real git)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from reconciler.daemon.reconcile import PassResult, Reconciler, Settings
from tests.support.workspace import limit_and_throttle, make_workspace, small_vm, unthrottle

pytestmark = pytest.mark.integration
PLAN = "openshift-mtv/demo-plan"


def _disks_with_chunks(state: Path) -> int:
    try:
        with sqlite3.connect(state / "progress.db", timeout=5) as con:
            return con.execute("SELECT count(DISTINCT disk) FROM chunks").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_shutdown_pauses_every_running_vm_and_the_next_start_resumes(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, [small_vm(f"vm-{i}", 40 + i, data_mib=40) for i in range(3)])
    # ~20 s of copying per VM, two at a time: the stop lands inside both copies however slowly
    # the test gets to it (a stop lets the chunks already being read finish)
    limit_and_throttle(ws, 2, 2)
    settings = Settings(source=str(ws.clone), state_dir=ws.state, cluster=ws.cluster)
    rec = Reconciler(settings)
    outcome: list[PassResult] = []
    thread = threading.Thread(target=lambda: outcome.append(rec.run_pass()))
    thread.start()
    try:
        deadline = time.monotonic() + 120  # a safety net, not a measure of speed
        while _disks_with_chunks(ws.state) < 2:  # both VMs in flight are copying
            assert time.monotonic() < deadline and thread.is_alive(), outcome
            time.sleep(0.05)
        rec.stop()
        thread.join(60)
        assert not thread.is_alive()
        stopped = {v.vm_name: v for v in rec.store.vms(PLAN)}
    finally:
        rec.stop()
        thread.join(60)
        rec.close()
    assert outcome and outcome[0].work_left
    for name in ("vm-0", "vm-1"):
        assert (stopped[name].phase, stopped[name].result) == ("CopyDisks", "")
        assert stopped[name].started
        copy = next(s for s in stopped[name].steps if s["name"] == "CopyDisks")
        assert copy["phase"] == "Running"  # stopped inside the copy, not after it
    assert (stopped["vm-2"].phase, stopped["vm-2"].started, stopped["vm-2"].result) == (
        "Pending",
        "",
        "",
    )
    committed = {
        v["name"]: v["phase"] for v in ws.status("migration", "demo-plan-1")["status"]["vms"]
    }
    assert committed == {"vm-0": "CopyDisks", "vm-1": "CopyDisks", "vm-2": "Pending"}

    unthrottle(ws)  # the rest of the copies at full speed
    again = Reconciler(settings)
    try:
        again.run_pass()
        done = {v.vm_name: v for v in again.store.vms(PLAN)}
    finally:
        again.close()
    assert {v.result for v in done.values()} == {"Succeeded"}
    for name in ("vm-0", "vm-1"):
        copy = next(s for s in done[name].steps if s["name"] == "CopyDisks")
        assert int(copy["tasks"][0]["annotations"]["resumedChunks"]) >= 1
        assert done[name].started == stopped[name].started  # the same run, continued
