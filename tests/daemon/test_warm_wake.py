"""A warm VM waiting between precopy rounds is not work: the pass says when it is due."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from reconciler.daemon.reconcile import Reconciler
from reconciler.pipeline.phases import COPYING_PAUSED
from reconciler.planner.model import PlanDecision
from reconciler.progress.store import ProgressStore, VmProgress


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_paused_warm_vm_wakes_the_daemon_at_its_next_round(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "progress.db")
    try:
        d = PlanDecision("ns", "p", migration="m", run_vms=["vm-1"], warm=True)
        later = time.time() + 120
        rec = VmProgress("ns/p", "vm-1", "a", "m", "a", phase=COPYING_PAUSED)
        rec.warm = {"precopies": [], "nextPrecopyAt": _stamp(later)}
        store.put_vm(rec)
        stub = SimpleNamespace(store=store)
        work, wake = Reconciler._work_left(stub, [d])  # type: ignore[arg-type]
        assert not work and wake == int(later)
        d.cutover = datetime.now(UTC) + timedelta(seconds=30)  # a scheduled cutover comes first
        work, wake = Reconciler._work_left(stub, [d])  # type: ignore[arg-type]
        assert not work and wake == d.cutover.timestamp()
        d.cutover = datetime.now(UTC) - timedelta(seconds=1)  # due: work now
        assert Reconciler._work_left(stub, [d])[0]  # type: ignore[arg-type]
        rec.phase = "CopyDisks"  # a VM in the middle of a step is work
        store.put_vm(rec)
        d.cutover = None
        assert Reconciler._work_left(stub, [d]) == (True, None)  # type: ignore[arg-type]
    finally:
        store.close()
