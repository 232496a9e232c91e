"""``/metrics`` serves Forklift's ``mtv_*`` series (names, types, labels, label values, buckets)
and ours, recomputed from the progress store: read by prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.health import Health
from reconciler.daemon.metrics import plan_uid
from reconciler.progress.store import MigrationRecord, PlanLabels, ProgressStore, VmProgress
from tests.support.metrics_store import MIB
from tests.support.metrics_store import seed as _seed

NOW = 1_800_000_000.0


def _scrape(health: Health) -> tuple[dict, dict]:
    text = health.metrics()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    return families, samples


@pytest.fixture
def store(tmp_path: Path):
    s = ProgressStore(tmp_path / "progress.db")
    _seed(s)
    yield s
    s.close()


def _health(store: ProgressStore) -> Health:
    health = Health(wall=lambda: NOW)
    health.store_from(store)
    return health


def L(**kw: str) -> tuple:  # noqa: N802 - reads like a label set
    return tuple(sorted(kw.items()))


COLD = {"provider": "ova", "mode": "Cold", "target": "Local"}
WARM = {"provider": "vsphere", "mode": "Warm", "target": "Remote"}


def test_forklift_names_types_and_labels(store) -> None:
    families, _ = _scrape(_health(store))
    expected = {
        "mtv_migrations_status": ("counter", {"status", "provider", "mode", "target"}),
        "mtv_workload_migrations_status": (
            "counter",
            {"status", "provider", "mode", "target", "plan"},
        ),
        "mtv_plans_status": ("gauge", {"status", "provider", "mode", "target"}),
        "mtv_plan_alert_status": (
            "gauge",
            {"status", "provider", "mode", "target", "plan", "plan_name", "phase"},
        ),
        "mtv_migration_duration_seconds": ("gauge", {"provider", "mode", "target", "plan"}),
        "mtv_migration_data_transferred_bytes": ("gauge", {"provider", "mode", "target", "plan"}),
        "mtv_migrations_duration_seconds": ("histogram", {"provider", "mode", "target"}),
        "mtv_planned_vms": ("counter", {"provider", "mode", "target"}),
        "mtv_migrated_vms": ("counter", {"status", "provider", "mode", "target"}),
    }
    for name, (kind, labels) in expected.items():
        fam = families[name]
        assert fam.type == kind, name
        assert fam.samples, name
        for s in fam.samples:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)


def test_forklift_values(store) -> None:
    _, samples = _scrape(_health(store))
    cold_uid = plan_uid("mtv/cold")
    assert samples[("mtv_migrations_status_total", L(status="Failed", **COLD))] == 1
    assert samples[("mtv_migrations_status_total", L(status="Succeeded", **COLD))] == 1
    key = ("mtv_workload_migrations_status_total", L(status="Succeeded", plan=cold_uid, **COLD))
    assert samples[key] == 1
    # plans by their current state: the cold one succeeded last, the warm one executes
    assert samples[("mtv_plans_status", L(status="Succeeded", **COLD))] == 1
    assert samples[("mtv_plans_status", L(status="Executing", **WARM))] == 1
    alert = L(status="Succeeded", plan=cold_uid, plan_name="cold", phase="Completed", **COLD)
    assert samples[("mtv_plan_alert_status", alert)] == 1
    # the last succeeded Migration: 3 hours, and what its VMs' copy tasks report (10 MiB)
    assert samples[("mtv_migration_duration_seconds", L(plan=cold_uid, **COLD))] == 3 * 3600
    assert samples[("mtv_migration_data_transferred_bytes", L(plan=cold_uid, **COLD))] == 10 * MIB
    # the histogram: Forklift's buckets in hours; 3 h falls in le=5h and above
    buckets = {
        float(dict(labels)["le"]): v
        for (name, labels), v in samples.items()
        if name == "mtv_migrations_duration_seconds_bucket"
    }
    assert sorted(buckets) == [3600.0, 7200.0, 18000.0, 36000.0, 86400.0, 172800.0, float("inf")]
    assert buckets[7200.0] == 0 and buckets[18000.0] == 1 and buckets[float("inf")] == 1
    assert samples[("mtv_migrations_duration_seconds_count", L(**COLD))] == 1
    assert samples[("mtv_migrations_duration_seconds_sum", L(**COLD))] == 3 * 3600
    assert samples[("mtv_planned_vms_total", L(**COLD))] == 2
    assert samples[("mtv_planned_vms_total", L(**WARM))] == 1
    # vm-a failed in m1 then succeeded in m2: both outcomes count, as Forklift counts per
    # Migration; a later run never makes the counter go down
    assert samples[("mtv_migrated_vms_total", L(status="Failed", **COLD))] == 1
    assert samples[("mtv_migrated_vms_total", L(status="Succeeded", **COLD))] == 2


def test_a_failed_plan_alerts_with_the_phases_its_vms_failed_in(tmp_path) -> None:
    store = ProgressStore(tmp_path / "p.db")
    store.put_plan_labels(PlanLabels("ns/p", plan_uid("ns/p"), "ovirt", "Cold", "Remote"))
    store.put_migration(MigrationRecord("ns/p", "m", "2026-01-01T00:00:00Z", "x", "Failed"))
    for vm, phase in (("a", "CopyDisks"), ("b", "CreateVM")):
        rec = VmProgress("ns/p", vm, vm, "m", phase="Failed", result="Failed")
        rec.error = {"phase": phase, "reasons": ["boom"]}
        store.put_vm(rec)
    _, samples = _scrape(_health(store))
    labels = L(
        status="Failed",
        provider="ovirt",
        mode="Cold",
        target="Remote",
        plan=plan_uid("ns/p"),
        plan_name="p",
        phase="CopyDisks,CreateVM",
    )
    assert samples[("mtv_plan_alert_status", labels)] == 1
    store.close()


def test_ours(store) -> None:
    health = _health(store)
    _, samples = _scrape(health)
    vm = L(plan="mtv/warm", vm="orders-db")
    assert samples[("mtv_gitops_warm_rounds_total", vm)] == 3
    assert samples[("mtv_gitops_warm_round_bytes_total", vm)] == 16 * MIB + 4096 + 8192
    assert samples[("mtv_gitops_warm_round_failures_total", vm)] == 1
    since = L(plan="mtv/warm", vm="orders-db", phase="CopyingPaused")
    assert samples[("mtv_gitops_vm_phase_started_timestamp_seconds", since)] == 1767399000.0
    assert samples[("mtv_gitops_validation_seconds_count", L(provider="vsphere"))] == 3
    assert samples[("mtv_gitops_validation_seconds_sum", L(provider="vsphere"))] == 0.25
    assert samples[("mtv_gitops_vms", L(phase="Completed"))] == 2
    assert samples[("mtv_gitops_git_push_retries_total", ())] == 0
    assert samples[("mtv_gitops_leader", ())] == 1
    health.pass_done(seconds=2.0)
    health.pushes_from(lambda: {"retries": 3, "conflicts": 1, "failures": 0})
    _, samples = _scrape(health)
    assert samples[("mtv_gitops_last_pass_timestamp_seconds", ())] == NOW
    assert samples[("mtv_gitops_pass_duration_seconds_bucket", L(le="5.0"))] == 1
    assert samples[("mtv_gitops_pass_duration_seconds_bucket", L(le="1.0"))] == 0
    assert samples[("mtv_gitops_git_push_retries_total", ())] == 3
    assert samples[("mtv_gitops_git_push_conflicts_total", ())] == 1


def test_counts_survive_a_restart(store, tmp_path) -> None:
    """A new process on the same store serves the same counts: nothing starts from zero."""
    before = _scrape(_health(store))[1]
    store.close()
    reopened = ProgressStore(tmp_path / "progress.db")
    after = _scrape(_health(reopened))[1]
    forklift = {k: v for k, v in before.items() if k[0].startswith("mtv_") and "gitops" not in k[0]}
    assert forklift and all(after[k] == v for k, v in forklift.items())
    reopened.close()
