"""A progress store holding what the metrics tests read: two plans, Migrations that failed and
succeeded, a warm VM mid-way, validation totals (tests/daemon/test_metrics.py and the check
that the alerts and the dashboard read only served series)."""

from __future__ import annotations

from reconciler.daemon.metrics import plan_uid
from reconciler.daemon.validate import _note_validation
from reconciler.progress.store import MigrationRecord, PlanLabels, ProgressStore, VmProgress

MIB = 1024 * 1024


def _copy_step(mib: list[int], phase: str = "Completed", started: str = "") -> dict:
    tasks = [
        {"name": f"disk-{i}", "phase": phase, "progress": {"total": n, "completed": n}}
        for i, n in enumerate(mib)
    ]
    step = {"name": "CopyDisks", "phase": phase, "tasks": tasks}
    if started:
        step["started"] = started
    return step


def seed(store: ProgressStore) -> None:
    """Two plans: a cold OVA plan whose first Migration failed and second succeeded; a warm
    vSphere plan onto a remote cluster with one VM copying now."""
    store.put_plan_labels(PlanLabels("mtv/cold", plan_uid("mtv/cold"), "ova", "Cold", "Local"))
    store.put_plan_labels(PlanLabels("mtv/warm", plan_uid("mtv/warm"), "vsphere", "Warm", "Remote"))
    # migration 1 of the cold plan: vm-a failed in CopyDisks, vm-b succeeded
    store.put_migration(
        MigrationRecord("mtv/cold", "m1", "2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z", "Failed")
    )
    failed = VmProgress("mtv/cold", "vm-a", "alpha", "m1", phase="Failed", result="Failed")
    failed.steps = [_copy_step([10], phase="Failed")]
    failed.error = {"phase": "CopyDisks", "reasons": ["disk full"]}
    store.put_vm(failed)
    ok = VmProgress("mtv/cold", "vm-b", "beta", "m1", phase="Completed", result="Succeeded")
    ok.steps = [_copy_step([100, 28])]
    store.put_vm(ok)
    store.note_outcomes()  # what a scrape between the two Migrations saw
    # migration 2 re-runs vm-a, which succeeds: 3 h after it started
    store.put_migration(
        MigrationRecord(
            "mtv/cold", "m2", "2026-01-02T00:00:00Z", "2026-01-02T03:00:00Z", "Succeeded"
        )
    )
    rerun = VmProgress("mtv/cold", "vm-a", "alpha", "m2", phase="Completed", result="Succeeded")
    rerun.steps = [_copy_step([10])]
    store.put_vm(rerun)
    # the warm plan runs: one VM in CopyingPaused after three rounds, one failure
    store.put_migration(MigrationRecord("mtv/warm", "w1", "2026-01-03T00:00:00Z"))
    warm = VmProgress("mtv/warm", "vm-w", "orders-db", "w1", phase="CopyingPaused")
    warm.steps = [
        _copy_step([128]),
        {"name": "Precopy", "phase": "Running", "started": "2026-01-03T00:10:00Z"},
    ]
    warm.warm = {
        "precopies": [
            {"round": 0, "bytes": 16 * MIB},
            {"round": 1, "bytes": 4096},
            {"round": 2, "bytes": 8192},
        ],
        "failures": 1,
    }
    store.put_vm(warm)
    _note_validation(_Validator(store), "vsphere", 3, 0.25)


class _Validator:
    def __init__(self, store: ProgressStore) -> None:
        self.store = store
