"""``/metrics``: Forklift's ``mtv_*`` series and ours (``mtv_gitops_*``), on prometheus_client.

MTV users' dashboards and alerts read Forklift's metrics, so the same names, types, labels and
label values are served here (Forklift's ``pkg/monitoring/metrics/forklift-controller``):

- ``mtv_migrations_status_total{status,provider,mode,target}`` -- ended Migrations;
- ``mtv_workload_migrations_status_total{status,provider,mode,target,plan}`` -- the same per plan;
- ``mtv_plans_status{status,provider,mode,target}`` -- plans by their current condition;
- ``mtv_plan_alert_status{status,provider,mode,target,plan,plan_name,phase}`` -- 1 for each
  plan that succeeded (phase ``Completed``) or failed (phase: the steps its VMs failed in);
- ``mtv_migration_duration_seconds`` and ``mtv_migration_data_transferred_bytes`` -- of the
  plan's last succeeded Migration; ``mtv_migrations_duration_seconds`` -- their histogram;
- ``mtv_planned_vms_total`` and ``mtv_migrated_vms_total{status}`` -- VMs planned and ended.

Every one is computed at scrape time from the progress store, never a provider or git: the
store survives a restart, so a counter does not fall back to zero mid-migration (Forklift
recounts its custom resources the same way).  Ours add what this reconciler alone knows: copy
bytes and rate per disk, warm rounds, cutover downtime, time in the current phase, validation
time, git pushes, passes and leadership.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from reconciler.daemon.validate import VALIDATION_KEY
from reconciler.progress.pipeline import MetricView
from reconciler.progress.store import PlanLabels, ProgressStore

# Forklift's label values
SUCCEEDED, FAILED, CANCELED, EXECUTING = "Succeeded", "Failed", "Canceled", "Executing"
COLD, WARM, LOCAL, REMOTE = "Cold", "Warm", "Local", "Remote"
MIB = 1024 * 1024  # Forklift counts transferred data from tasks' progress in MiB
HOUR = 3600.0
DURATION_BUCKETS = (1 * HOUR, 2 * HOUR, 5 * HOUR, 10 * HOUR, 24 * HOUR, 48 * HOUR)

PLAN_LABELS = ("provider", "mode", "target")


def plan_uid(plan_key: str) -> str:
    """The ``plan`` label: a Plan in git has no cluster UID, so a stable UUID is derived
    from its namespace/name (the same plan keeps its id across restarts and replicas)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mtv-gitops:plan:{plan_key}"))


@functools.lru_cache(maxsize=65536)
def _parse_time(text: str) -> float | None:
    """Status times (RFC 3339, UTC) as Unix time; remembered: many VMs share a second."""
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).timestamp()


class StoreCollector(Collector):
    """Forklift's series and ours, recomputed from the progress store on every scrape.

    *store* returns the store to read, or None while there is none (a standby replica, the
    moment between two leadership terms): then only the series that need none are served.
    """

    def __init__(
        self,
        store: Callable[[], ProgressStore | None],
        live: LiveMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.live = live or LiveMetrics()
        self.clock = clock
        # the store's families as of a store revision: an idle store is not read again
        self._cached: tuple[tuple[int, int], list[Metric]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # computed on each scrape: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self.live.collect()
        store = self.store()
        if store is None:
            return
        try:
            key = (id(store), store.database.revision())
            if self._cached is not None and self._cached[0] == key:
                yield from self._cached[1]  # nothing was written since the last scrape
                return
            store.note_outcomes()
            key = (id(store), store.database.revision())
            labels = store.plan_labels()
            view = store.metric_view()
            migrations = store.all_migrations()
            outcomes = store.outcome_counts()
            validation = store.get(VALIDATION_KEY)
        except Exception:  # noqa: BLE001 - a store closing under a scrape: serve the rest
            return
        families = [
            *_forklift(labels, view, migrations, outcomes),
            *_ours(view, validation),
        ]
        self._cached = (key, families)
        yield from families


def _labels_of(labels: dict[str, PlanLabels], plan: str) -> tuple[str, str, str]:
    found = labels.get(plan)
    if found is None:  # a record older than the plans table: the next pass labels it
        return ("", COLD, LOCAL)
    return (found.provider, found.mode, found.target)


def _uid(labels: dict[str, PlanLabels], plan: str) -> str:
    found = labels.get(plan)
    return found.uid if found is not None and found.uid else plan_uid(plan)


def _forklift(
    labels: dict[str, PlanLabels],
    view: MetricView,
    migrations: list,
    outcomes: dict[tuple[str, str], int],
) -> Iterator[Metric]:
    status_total = CounterMetricFamily(
        "mtv_migrations_status",
        "VM Migrations sorted by status, provider, mode and target",
        labels=("status", *PLAN_LABELS),
    )
    by_plan_total = CounterMetricFamily(
        "mtv_workload_migrations_status",
        "VM Migrations status by provider, mode, target and plan",
        labels=("status", *PLAN_LABELS, "plan"),
    )
    plans_status = GaugeMetricFamily(
        "mtv_plans_status",
        "VM migration Plans sorted by status, provider, mode and target",
        labels=("status", *PLAN_LABELS),
    )
    alert = GaugeMetricFamily(
        "mtv_plan_alert_status",
        "VM Migration plan statuses for alerting",
        labels=("status", *PLAN_LABELS, "plan", "plan_name", "phase"),
    )
    duration = GaugeMetricFamily(
        "mtv_migration_duration_seconds",
        "Duration of VM migrations in seconds",
        labels=(*PLAN_LABELS, "plan"),
    )
    transferred = GaugeMetricFamily(
        "mtv_migration_data_transferred_bytes",
        "Total data transferred during VM migrations in bytes",
        labels=(*PLAN_LABELS, "plan"),
    )
    histogram = HistogramMetricFamily(
        "mtv_migrations_duration_seconds",
        "Histogram of VM migrations duration in seconds",
        labels=PLAN_LABELS,
    )
    planned = CounterMetricFamily(
        "mtv_planned_vms",
        "Number of VMs listed in migration plan specs",
        labels=PLAN_LABELS,
    )
    migrated = CounterMetricFamily(
        "mtv_migrated_vms",
        "Individual VM migration outcomes sorted by status, provider, mode and target",
        labels=("status", *PLAN_LABELS),
    )

    status_counts: dict[tuple[str, ...], int] = {}
    by_plan: dict[tuple[str, ...], int] = {}
    durations: dict[tuple[str, ...], list[float]] = {}
    last_ok: dict[str, object] = {}  # plan -> its last succeeded Migration
    latest: dict[str, object] = {}  # plan -> its latest Migration
    for m in migrations:
        latest[m.plan] = m
        if m.result not in (SUCCEEDED, FAILED, CANCELED):
            continue
        base = _labels_of(labels, m.plan)
        status_counts[(m.result, *base)] = status_counts.get((m.result, *base), 0) + 1
        key = (m.result, *base, _uid(labels, m.plan))
        by_plan[key] = by_plan.get(key, 0) + 1
        if m.result == SUCCEEDED:
            last_ok[m.plan] = m
            start, end = _parse_time(m.started), _parse_time(m.completed)
            if start is not None and end is not None:
                durations.setdefault(base, []).append(max(0.0, end - start))
    for key, n in sorted(status_counts.items()):
        status_total.add_metric(key, n)
    for key, n in sorted(by_plan.items()):
        by_plan_total.add_metric(key, n)

    plan_counts: dict[tuple[str, ...], int] = {}
    for plan, m in sorted(latest.items()):
        base = _labels_of(labels, plan)
        state = EXECUTING if not m.completed else m.result
        if state:
            plan_counts[(state, *base)] = plan_counts.get((state, *base), 0) + 1
        uid, name = _uid(labels, plan), plan.partition("/")[2]
        if state == SUCCEEDED:
            alert.add_metric((SUCCEEDED, *base, uid, name, "Completed"), 1)
        elif state == FAILED:
            failed = view.failed_phases.get((plan, m.migration), [])
            alert.add_metric((FAILED, *base, uid, name, ",".join(failed)), 1)
    for key, n in sorted(plan_counts.items()):
        plans_status.add_metric(key, n)

    for plan, m in sorted(last_ok.items()):
        base = _labels_of(labels, plan)
        start, end = _parse_time(m.started), _parse_time(m.completed)
        uid = _uid(labels, plan)
        if start is not None and end is not None:
            duration.add_metric((*base, uid), max(0.0, end - start))
        mib = view.transferred_mib.get((plan, m.migration), 0)
        transferred.add_metric((*base, uid), float(mib * MIB))

    for base, values in sorted(durations.items()):
        cumulative = [(str(b), float(sum(1 for d in values if d <= b))) for b in DURATION_BUCKETS]
        cumulative.append(("+Inf", float(len(values))))
        histogram.add_metric(base, cumulative, sum_value=sum(values))

    planned_counts: dict[tuple[str, ...], int] = {}
    for plan, n in view.vms_by_plan.items():
        base = _labels_of(labels, plan)
        planned_counts[base] = planned_counts.get(base, 0) + n
    for base, n in sorted(planned_counts.items()):
        planned.add_metric(base, n)
    migrated_counts: dict[tuple[str, ...], int] = {}
    for (plan, result), n in outcomes.items():
        key = (result, *_labels_of(labels, plan))
        migrated_counts[key] = migrated_counts.get(key, 0) + n
    for key, n in sorted(migrated_counts.items()):
        migrated.add_metric(key, n)

    yield from (
        status_total,
        by_plan_total,
        plans_status,
        alert,
        duration,
        transferred,
        histogram,
        planned,
        migrated,
    )


def _ours(view: MetricView, validation: str) -> Iterator[Metric]:
    phases = GaugeMetricFamily(
        "mtv_gitops_vms", "VMs in the progress store, by pipeline phase.", labels=("phase",)
    )
    for phase, n in sorted(view.phases.items()):
        phases.add_metric((phase,), n)
    yield phases

    since = GaugeMetricFamily(
        "mtv_gitops_vm_phase_started_timestamp_seconds",
        "When each unfinished VM's current phase started (Unix time): alert on time() minus it.",
        labels=("plan", "vm", "phase"),
    )
    rounds = CounterMetricFamily(
        "mtv_gitops_warm_rounds",
        "Precopy rounds an unfinished warm VM has completed (round 0, the full copy, included).",
        labels=("plan", "vm"),
    )
    round_bytes = CounterMetricFamily(
        "mtv_gitops_warm_round_bytes",
        "Bytes the precopy rounds of a warm VM have copied.",
        labels=("plan", "vm"),
    )
    failures = CounterMetricFamily(
        "mtv_gitops_warm_round_failures",
        "Precopy rounds of a warm VM that failed and were tried again.",
        labels=("plan", "vm"),
    )
    downtime = GaugeMetricFamily(
        "mtv_gitops_cutover_downtime_seconds",
        "A warm VM's cutover downtime: source powered off to VirtualMachine created.",
        labels=("plan", "vm"),
    )
    for v in view.unfinished:
        if v.phase_started:
            started = _parse_time(v.phase_started)
            if started is not None:
                since.add_metric((v.plan, v.vm_name, v.phase), started)
        if v.warm_rounds or v.warm_failures:  # a finished VM's rounds are history: no series
            rounds.add_metric((v.plan, v.vm_name), v.warm_rounds)
            round_bytes.add_metric((v.plan, v.vm_name), v.warm_bytes)
            failures.add_metric((v.plan, v.vm_name), v.warm_failures)
        if v.downtime is not None:
            downtime.add_metric((v.plan, v.vm_name), float(v.downtime))
    yield from (since, rounds, round_bytes, failures, downtime)

    summary = SummaryMetricFamily(
        "mtv_gitops_validation_seconds",
        "Time spent validating VMs with the Rego rules (count: VMs validated), per source type.",
        labels=("provider",),
    )
    for ptype, (n, seconds) in sorted(_validation_totals(validation).items()):
        summary.add_metric((ptype,), count_value=n, sum_value=seconds)
    yield summary


def _validation_totals(raw: str) -> dict[str, tuple[int, float]]:
    try:
        found = json.loads(raw or "{}")
    except ValueError:
        return {}
    return {
        str(k): (int(v[0]), float(v[1]))
        for k, v in found.items()
        if isinstance(v, list) and len(v) == 2
    }


class LiveMetrics:
    """What only the running process knows: passes, copies in flight, git pushes, leadership.

    Written by the daemon loop and the event bus; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self.passes = 0
        self.failed_passes = 0
        self.last_pass = 0.0  # Unix time the last pass ended well
        self.pass_seconds: list[float] = []  # bucketed below
        self.pass_sum = 0.0
        self.copied = 0
        self.results: dict[str, int] = {}
        self.leading = True
        # (plan, VM name, disk) -> bytes done, bytes per second, total bytes, seconds left
        self.disks: dict[tuple[str, str, str], tuple[int, float, int, float | None]] = {}
        self.pushes: Callable[[], dict[str, int]] | None = None

    PASS_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

    def pass_done(self, failed: bool, seconds: float | None) -> None:
        with self._lock:
            self.passes += 1
            self.failed_passes += failed
            if not failed:
                self.last_pass = self.clock()
            if seconds is not None:
                self.pass_seconds.append(seconds)
                self.pass_sum += seconds
                if len(self.pass_seconds) > 10_000:  # keep the buckets, drop the detail
                    self.pass_seconds = self.pass_seconds[-10_000:]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            passes, failed, copied = self.passes, self.failed_passes, self.copied
            last, leading = self.last_pass, self.leading
            seconds, total = list(self.pass_seconds), self.pass_sum
            results, disks = dict(self.results), dict(self.disks)
            pushes = self.pushes
        yield CounterMetricFamily("mtv_gitops_passes", "Reconcile passes run.", value=passes)
        yield CounterMetricFamily(
            "mtv_gitops_failed_passes",
            "Passes that ended in an error (git unreachable, or a bug).",
            value=failed,
        )
        yield GaugeMetricFamily(
            "mtv_gitops_last_pass_timestamp_seconds",
            "When the last pass that worked ended (Unix time; 0: none yet in this process).",
            value=last,
        )
        hist = HistogramMetricFamily(
            "mtv_gitops_pass_duration_seconds", "How long reconcile passes took."
        )
        buckets = [(str(b), float(sum(1 for s in seconds if s <= b))) for b in self.PASS_BUCKETS]
        buckets.append(("+Inf", float(len(seconds))))
        hist.add_metric((), buckets, sum_value=total)
        yield hist
        yield CounterMetricFamily(
            "mtv_gitops_copied_bytes",
            "Disk bytes copied by this process (logical bytes, holes included).",
            value=copied,
        )
        res = CounterMetricFamily(
            "mtv_gitops_vm_results",
            "VMs whose migration ended in this process, by result.",
            labels=("result",),
        )
        for result, n in sorted(results.items()):
            res.add_metric((result,), n)
        yield res
        done = GaugeMetricFamily(
            "mtv_gitops_disk_copied_bytes",
            "Bytes of each disk copied so far by the copy in flight (resumed bytes included).",
            labels=("plan", "vm", "disk"),
        )
        rate = GaugeMetricFamily(
            "mtv_gitops_disk_copy_rate_bytes_per_second",
            "Throughput of each disk's copy in flight.",
            labels=("plan", "vm", "disk"),
        )
        for key, (nbytes, bps, *_) in sorted(disks.items()):
            done.add_metric(key, nbytes)
            rate.add_metric(key, bps)
        yield from (done, rate)
        counts = pushes() if pushes is not None else {}
        for name, help_text in (
            ("retries", "Status pushes tried again after the remote rejected one."),
            ("conflicts", "Status commits rebased over a conflicting change in status/."),
            ("failures", "Status pushes that gave up (the remote refused, or kept rejecting)."),
        ):
            yield CounterMetricFamily(
                f"mtv_gitops_git_push_{name}", help_text, value=counts.get(name, 0)
            )
        yield GaugeMetricFamily(
            "mtv_gitops_leader",
            "1 when this replica reconciles, 0 while it stands by.",
            value=int(leading),
        )


def registry(collector: StoreCollector) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one): two daemons in one test
    process never share series."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The Prometheus text format (0.0.4) of *reg*."""
    return generate_latest(reg)
