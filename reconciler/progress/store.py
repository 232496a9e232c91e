"""The progress store: what each VM's pipeline and each disk's copy has done so far.

Status files in git are a projection of this store; the store is the truth a restarted
reconciler continues from.  One SQLite file in WAL mode, safe to share between threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS vms (
    plan TEXT NOT NULL, vm_id TEXT NOT NULL, vm_name TEXT NOT NULL DEFAULT '',
    migration TEXT NOT NULL DEFAULT '', target_name TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT 'Pending', result TEXT NOT NULL DEFAULT '',
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]', error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, vm_id));
CREATE TABLE IF NOT EXISTS migrations (
    plan TEXT NOT NULL, migration TEXT NOT NULL,
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, migration));
CREATE TABLE IF NOT EXISTS disks (
    disk TEXT PRIMARY KEY, size INTEGER NOT NULL, chunk_size INTEGER NOT NULL,
    source_digest TEXT NOT NULL DEFAULT '', target_digest TEXT NOT NULL DEFAULT '',
    completed TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks (
    disk TEXT NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, data_bytes INTEGER NOT NULL,
    PRIMARY KEY (disk, idx));
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS validations (
    provider TEXT NOT NULL, vm_id TEXT NOT NULL, rules_version TEXT NOT NULL,
    rules_digest TEXT NOT NULL, input_digest TEXT NOT NULL, result TEXT NOT NULL,
    validated TEXT NOT NULL, PRIMARY KEY (provider, vm_id));
"""


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


@dataclass
class DiskRecord:
    disk: str
    size: int
    chunk_size: int
    source_digest: str = ""
    target_digest: str = ""
    completed: str = ""


@dataclass
class ValidationRecord:
    """What one VM was validated with, and what the rules said about it."""

    provider: str  # "ns/name" of the source Provider
    vm_id: str
    rules_version: str
    rules_digest: str
    input_digest: str
    result: dict[str, Any]  # {"concerns": [...], "errors": [...], "failed": "..."}
    validated: str


class ProgressStore:
    """Typed access to the progress database; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- VMs -------------------------------------------------------------------------------

    def get_vm(self, plan: str, vm_id: str) -> VmProgress | None:
        with self._lock:
            row = self._db.execute(
                "SELECT plan, vm_id, vm_name, migration, target_name, phase, result, started,"
                " completed, steps, error FROM vms WHERE plan=? AND vm_id=?",
                (plan, vm_id),
            ).fetchone()
        return _vm(row) if row else None

    def phase_counts(self) -> dict[str, int]:
        """How many VMs are in each pipeline phase, over every plan (the daemon's metrics)."""
        with self._lock:
            rows = self._db.execute("SELECT phase, count(*) FROM vms GROUP BY phase").fetchall()
        return {phase: count for phase, count in rows}

    def vms(self, plan: str) -> list[VmProgress]:
        with self._lock:
            rows = self._db.execute(
                "SELECT plan, vm_id, vm_name, migration, target_name, phase, result, started,"
                " completed, steps, error FROM vms WHERE plan=? ORDER BY rowid",
                (plan,),
            ).fetchall()
        return [_vm(r) for r in rows]

    def put_vm(self, vm: VmProgress) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO vms (plan, vm_id, vm_name, migration, target_name, phase,"
                " result, started, completed, steps, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
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
                ),
            )

    # -- migrations ------------------------------------------------------------------------

    def get_migration(self, plan: str, migration: str) -> MigrationRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT plan, migration, started, completed, result, message FROM migrations"
                " WHERE plan=? AND migration=?",
                (plan, migration),
            ).fetchone()
        return MigrationRecord(*row) if row else None

    def migrations(self, plan: str) -> list[MigrationRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT plan, migration, started, completed, result, message FROM migrations"
                " WHERE plan=? ORDER BY started, rowid",
                (plan,),
            ).fetchall()
        return [MigrationRecord(*r) for r in rows]

    def put_migration(self, rec: MigrationRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO migrations VALUES (?,?,?,?,?,?)",
                (rec.plan, rec.migration, rec.started, rec.completed, rec.result, rec.message),
            )

    # -- disks and copied chunks -----------------------------------------------------------

    def get_disk(self, disk: str) -> DiskRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT disk, size, chunk_size, source_digest, target_digest, completed"
                " FROM disks WHERE disk=?",
                (disk,),
            ).fetchone()
        return DiskRecord(*row) if row else None

    def start_disk(self, disk: str, size: int, chunk_size: int) -> DiskRecord:
        """Begin (or continue) a disk copy; a changed geometry discards stale chunks."""
        with self._tx() as db:
            row = db.execute("SELECT size, chunk_size FROM disks WHERE disk=?", (disk,)).fetchone()
            if row is None or tuple(row) != (size, chunk_size):
                db.execute("DELETE FROM chunks WHERE disk=?", (disk,))
                db.execute(
                    "INSERT OR REPLACE INTO disks (disk, size, chunk_size) VALUES (?,?,?)",
                    (disk, size, chunk_size),
                )
        rec = self.get_disk(disk)
        assert rec is not None
        return rec

    def finish_disk(self, disk: str, source_digest: str, target_digest: str, when: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE disks SET source_digest=?, target_digest=?, completed=? WHERE disk=?",
                (source_digest, target_digest, when, disk),
            )

    def reset_disk(self, disk: str) -> None:
        """Forget a disk's copy entirely (its target was removed or found corrupt)."""
        with self._tx() as db:
            db.execute("DELETE FROM chunks WHERE disk=?", (disk,))
            db.execute("DELETE FROM disks WHERE disk=?", (disk,))

    def done_chunks(self, disk: str) -> dict[int, tuple[bytes, int]]:
        """Chunks already copied and durable on the target: index -> (hash, data bytes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, hash, data_bytes FROM chunks WHERE disk=?", (disk,)
            ).fetchall()
        return {r[0]: (bytes(r[1]), r[2]) for r in rows}

    def record_chunks(self, disk: str, chunks: Iterable[tuple[int, bytes, int]]) -> None:
        """Mark chunks copied; call only after the target has made them durable."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO chunks (disk, idx, hash, data_bytes) VALUES (?,?,?,?)",
                [(disk, i, h, n) for i, h, n in chunks],
            )

    # -- small settings ----------------------------------------------------------------------

    # -- validation --------------------------------------------------------------------------

    def validations(self, provider: str) -> dict[str, ValidationRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT provider, vm_id, rules_version, rules_digest, input_digest, result,"
                " validated FROM validations WHERE provider=?",
                (provider,),
            ).fetchall()
        return {r[1]: ValidationRecord(*r[:5], json.loads(r[5]), r[6]) for r in rows}

    def put_validations(self, records: Iterable[ValidationRecord]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO validations VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.provider,
                        r.vm_id,
                        r.rules_version,
                        r.rules_digest,
                        r.input_digest,
                        json.dumps(r.result, sort_keys=True),
                        r.validated,
                    )
                    for r in records
                ],
            )

    def forget_validations(self, provider: str, keep: Iterable[str]) -> None:
        """Drop records of VMs the provider no longer has."""
        keep = set(keep)
        with self._tx() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT vm_id FROM validations WHERE provider=?", (provider,))
            ]
            db.executemany(
                "DELETE FROM validations WHERE provider=? AND vm_id=?",
                [(provider, i) for i in ids if i not in keep],
            )

    # -- key/value ---------------------------------------------------------------------------

    def get(self, key: str, default: str = "") -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?,?)", (key, value))


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
    )
