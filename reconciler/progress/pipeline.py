"""The VMs' pipelines and the Migrations: what the pass runs, resumes and shows in status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reconciler.progress.db import Table

_VM_COLUMNS = (
    "plan, vm_id, vm_name, migration, target_name, phase, result, started, completed, steps,"
    " error, warm"
)
_MIGRATION_COLUMNS = "plan, migration, started, completed, result, message"


@dataclass
class VmProgress:
    """One VM's pipeline in one plan, as the last pass left it."""

    plan: str
    vm_id: str
    vm_name: str = ""
    migration: str = ""
    target_name: str = ""
    phase: str = "Pending"
    result: str = ""  # "", Succeeded, Failed, Canceled
    started: str = ""
    completed: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    # a warm migration's state across passes: snapshot and change ids, precopy rounds,
    # next precopy time, cutover record and proposal, downtime (None for a cold one)
    warm: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return bool(self.result)


@dataclass
class MigrationRecord:
    plan: str
    migration: str
    started: str = ""
    completed: str = ""
    result: str = ""
    message: str = ""


@dataclass(frozen=True)
class PlanLabels:
    """What the metrics say of a plan, as Forklift labels it: ``provider`` the source
    provider's type as MTV spells it, ``mode`` Cold or Warm, ``target`` Local (the destination
    Provider has no url: the cluster the reconciler runs in) or Remote, ``uid`` the plan's id."""

    plan: str  # namespace/name
    uid: str
    provider: str
    mode: str
    target: str


@dataclass(frozen=True)
class VmFacts:
    """A VM's record reduced to what metrics and the status page read, computed in SQL so a
    scrape over thousands of VMs parses no JSON in Python."""

    plan: str
    vm_id: str
    vm_name: str
    migration: str
    phase: str
    result: str
    phase_started: str  # when the running step started ("" when none runs)
    error_phase: str  # the step a failed VM failed in
    transferred_mib: int  # what its copy steps' tasks report done, in MiB (Forklift's unit)
    warm_rounds: int
    warm_bytes: int
    warm_failures: int
    downtime: float | None  # a warm cutover's downtime in seconds, once known


# a step's tasks report their progress in MiB, as Forklift's do; these steps copy disks
_COPY_STEPS = ("CopyDisks", "CopyFinalDelta")
_FACT_COLUMNS = "plan, vm_id, vm_name, migration, phase, result, facts"


def facts_of(vm: VmProgress) -> dict[str, Any]:
    """What :class:`VmFacts` adds to the record's columns, computed when the record is
    written, so a scrape reads a few small columns instead of every step's JSON."""
    running = next((s for s in vm.steps if s.get("phase") == "Running"), None)
    mib = sum(
        int((t.get("progress") or {}).get("completed") or 0)
        for s in vm.steps
        if s.get("name") in _COPY_STEPS
        for t in s.get("tasks") or ()
    )
    w = vm.warm or {}
    precopies = w.get("precopies") or []
    return {
        "s": (running or {}).get("started", ""),
        "e": (vm.error or {}).get("phase", "") or "",
        "m": mib,
        "r": len(precopies),
        "b": sum(int(p.get("bytes") or 0) for p in precopies),
        "f": int(w.get("failures") or 0),
        "d": w.get("downtimeSeconds"),
    }


@dataclass
class MetricView:
    """The VM records as the metrics need them: aggregates computed by SQLite over every
    record, and rows only for unfinished VMs (a scrape costs little more with 5,000 VMs
    finished than with none)."""

    vms_by_plan: dict[str, int]
    phases: dict[str, int]
    # (plan, migration) -> MiB the copy tasks of its succeeded VMs report done
    transferred_mib: dict[tuple[str, str], int]
    # (plan, migration) -> the steps its failed VMs failed in, in record order
    failed_phases: dict[tuple[str, str], list[str]]
    unfinished: list[VmFacts]


def _facts(row: tuple, facts: dict[str, Any]) -> VmFacts:
    return VmFacts(
        *row[:6],
        facts.get("s", ""),
        facts.get("e", ""),
        facts.get("m", 0),
        facts.get("r", 0),
        facts.get("b", 0),
        facts.get("f", 0),
        facts.get("d"),
    )


class PipelineStore(Table):
    """Per-VM pipeline records and per-plan Migration records; each call one transaction."""

    # -- VMs -------------------------------------------------------------------------------

    def get_vm(self, plan: str, vm_id: str) -> VmProgress | None:
        row = self.database.query_one(
            f"SELECT {_VM_COLUMNS} FROM vms WHERE plan=? AND vm_id=?", (plan, vm_id)
        )
        return _vm(row) if row else None

    def phase_counts(self) -> dict[str, int]:
        """How many VMs are in each pipeline phase, over every plan (the daemon's metrics)."""
        rows = self.database.query("SELECT phase, count(*) FROM vms GROUP BY phase")
        return {phase: count for phase, count in rows}

    def vms(self, plan: str) -> list[VmProgress]:
        rows = self.database.query(
            f"SELECT {_VM_COLUMNS} FROM vms WHERE plan=? ORDER BY rowid", (plan,)
        )
        return [_vm(r) for r in rows]

    def unfinished_warm(self) -> list[VmProgress]:
        """Warm VMs of every plan not finished yet (a deleted plan's may hold snapshots)."""
        rows = self.database.query(
            f"SELECT {_VM_COLUMNS} FROM vms WHERE warm != '' AND result = '' ORDER BY rowid"
        )
        return [_vm(r) for r in rows]

    def partial_images(self, target: str) -> list[VmProgress]:
        """Failed VMs whose partial images still hold space on ``target`` (kept for resume)."""
        rows = self.database.query(
            f"SELECT {_VM_COLUMNS} FROM vms WHERE result = 'Failed' AND error LIKE ? "
            "ORDER BY rowid",
            ('%"partialImages"%',),
        )
        vms = [_vm(r) for r in rows]
        return [v for v in vms if (v.error or {}).get("partialImages", {}).get("target") == target]

    def put_vm(self, vm: VmProgress) -> None:
        with self.database.tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO vms ({_VM_COLUMNS}, facts) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    vm.plan,
                    vm.vm_id,
                    vm.vm_name,
                    vm.migration,
                    vm.target_name,
                    vm.phase,
                    vm.result,
                    vm.started,
                    vm.completed,
                    json.dumps(vm.steps),
                    json.dumps(vm.error) if vm.error else "",
                    json.dumps(vm.warm) if vm.warm is not None else "",
                    json.dumps(facts_of(vm), separators=(",", ":")),
                ),
            )

    def metric_view(self) -> MetricView:
        """What ``/metrics`` serves of the VM records (see :class:`MetricView`)."""
        self._fill_facts()
        q = self.database.query
        by_plan = dict(q("SELECT plan, count(*) FROM vms GROUP BY plan"))
        phases = dict(q("SELECT phase, count(*) FROM vms GROUP BY phase"))
        transferred = {
            (plan, mig): int(n or 0)
            for plan, mig, n in q(
                "SELECT plan, migration, sum(json_extract(facts, '$.m')) FROM vms "
                "WHERE result = 'Succeeded' GROUP BY plan, migration"
            )
        }
        failed: dict[tuple[str, str], list[str]] = {}
        for plan, mig, phase in q(
            "SELECT plan, migration, json_extract(facts, '$.e') FROM vms "
            "WHERE result = 'Failed' ORDER BY rowid"
        ):
            if phase:
                failed.setdefault((plan, mig), []).append(phase)
        rows = q(f"SELECT {_FACT_COLUMNS} FROM vms WHERE result = '' ORDER BY rowid")
        unfinished = [_facts(r, json.loads(r[6] or "{}")) for r in rows]
        return MetricView(by_plan, phases, transferred, failed, unfinished)

    def _fill_facts(self) -> None:
        """Reduce the records written before the facts column existed (once)."""
        for plan, vm_id in self.database.query("SELECT plan, vm_id FROM vms WHERE facts = ''"):
            vm = self.get_vm(plan, vm_id)
            if vm is not None:
                self.put_vm(vm)

    def note_outcomes(self) -> None:
        """Remember every finished VM's outcome once per Migration, so outcome counters stay
        monotonic when a later Migration of the plan runs the VM again."""
        new = (
            "SELECT plan, migration, vm_id, result FROM vms v WHERE result != '' AND NOT EXISTS "
            "(SELECT 1 FROM vm_outcomes o WHERE o.plan = v.plan AND o.migration = v.migration "
            "AND o.vm_id = v.vm_id)"
        )
        if not self.database.query_one(new):
            return  # nothing new: no write transaction
        with self.database.tx() as db:
            db.execute(f"INSERT OR IGNORE INTO vm_outcomes {new}")

    def outcome_counts(self) -> dict[tuple[str, str], int]:
        """(plan, result) -> how many VM runs ended so, over every Migration."""
        rows = self.database.query(
            "SELECT plan, result, count(*) FROM vm_outcomes GROUP BY plan, result"
        )
        return {(plan, result): n for plan, result, n in rows}

    # -- plans -----------------------------------------------------------------------------

    def put_plan_labels(self, labels: PlanLabels) -> None:
        with self.database.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO plans (plan, uid, provider, mode, target) "
                "VALUES (?,?,?,?,?)",
                (labels.plan, labels.uid, labels.provider, labels.mode, labels.target),
            )

    def plan_labels(self) -> dict[str, PlanLabels]:
        rows = self.database.query("SELECT plan, uid, provider, mode, target FROM plans")
        return {r[0]: PlanLabels(*r) for r in rows}

    def all_migrations(self) -> list[MigrationRecord]:
        rows = self.database.query(
            f"SELECT {_MIGRATION_COLUMNS} FROM migrations ORDER BY plan, started, rowid"
        )
        return [MigrationRecord(*r) for r in rows]

    def plans(self) -> set[str]:
        """Every plan key with a record (a deleted plan's too, until it is forgotten)."""
        rows = self.database.query(
            "SELECT DISTINCT plan FROM vms UNION SELECT plan FROM migrations"
        )
        return {r[0] for r in rows}

    def forget_plan(self, plan: str) -> None:
        """Drop a deleted plan's records once what it left is cleaned up."""
        with self.database.tx() as db:
            db.execute("DELETE FROM vms WHERE plan=?", (plan,))
            db.execute("DELETE FROM migrations WHERE plan=?", (plan,))

    # -- migrations ------------------------------------------------------------------------

    def get_migration(self, plan: str, migration: str) -> MigrationRecord | None:
        row = self.database.query_one(
            f"SELECT {_MIGRATION_COLUMNS} FROM migrations WHERE plan=? AND migration=?",
            (plan, migration),
        )
        return MigrationRecord(*row) if row else None

    def migrations(self, plan: str) -> list[MigrationRecord]:
        rows = self.database.query(
            f"SELECT {_MIGRATION_COLUMNS} FROM migrations WHERE plan=? ORDER BY started, rowid",
            (plan,),
        )
        return [MigrationRecord(*r) for r in rows]

    def put_migration(self, rec: MigrationRecord) -> None:
        with self.database.tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO migrations ({_MIGRATION_COLUMNS}) VALUES (?,?,?,?,?,?)",
                (rec.plan, rec.migration, rec.started, rec.completed, rec.result, rec.message),
            )


def _vm(row: tuple) -> VmProgress:
    return VmProgress(
        plan=row[0],
        vm_id=row[1],
        vm_name=row[2],
        migration=row[3],
        target_name=row[4],
        phase=row[5],
        result=row[6],
        started=row[7],
        completed=row[8],
        steps=json.loads(row[9] or "[]"),
        error=json.loads(row[10]) if row[10] else None,
        warm=json.loads(row[11]) if row[11] else None,
    )
