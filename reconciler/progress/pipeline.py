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

    def put_vm(self, vm: VmProgress) -> None:
        with self.database.tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO vms ({_VM_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
                ),
            )

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
