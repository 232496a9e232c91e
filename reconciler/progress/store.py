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
    warm TEXT NOT NULL DEFAULT '', PRIMARY KEY (plan, vm_id));
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
CREATE TABLE IF NOT EXISTS rounds (
    disk TEXT NOT NULL, round INTEGER NOT NULL, change_id TEXT NOT NULL DEFAULT '',
    changes TEXT NOT NULL DEFAULT '', chunks INTEGER NOT NULL DEFAULT 0,
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    source_digest TEXT NOT NULL DEFAULT '', target_digest TEXT NOT NULL DEFAULT '',
    bytes_written INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (disk, round));
CREATE TABLE IF NOT EXISTS round_chunks (
    disk TEXT NOT NULL, idx INTEGER NOT NULL, prev_hash BLOB, whole INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (disk, idx));
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


@dataclass
class DiskRecord:
    disk: str
    size: int
    chunk_size: int
    source_digest: str = ""
    target_digest: str = ""
    completed: str = ""


@dataclass
class RoundRecord:
    """One copy round of a disk: round 0 is the full copy, 1, 2, ... are warm precopy rounds.

    ``change_id`` is the change id of the snapshot the round copied (the next round asks for
    the areas changed since it); ``changes`` fingerprints the round's changed areas, so a
    resumed round can be told apart from a different one under the same number.
    """

    disk: str
    round: int
    change_id: str = ""
    changes: str = ""
    chunks: int = 0  # chunks the round copies (its changed areas' and carried-over ones)
    started: str = ""
    completed: str = ""
    source_digest: str = ""
    target_digest: str = ""
    bytes_written: int = 0  # over every attempt, as recorded when the round completed


@dataclass(frozen=True)
class RoundChunk:
    """A chunk the disk's current round copies.

    ``prev_hash`` is the hash the chunk had before the round (None: never recorded, the
    target reads zeros there); ``whole`` says an earlier, unfinished round may have written
    part of it, so the whole chunk must be written again; ``done`` says this round recorded it.
    """

    prev_hash: bytes | None
    whole: bool
    done: bool


class RoundError(ValueError):
    """A round that cannot begin: no finished copy under it, or it contradicts the record."""


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
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(vms)")}
        if "warm" not in columns:  # a store made before warm migration existed
            self._db.execute("ALTER TABLE vms ADD COLUMN warm TEXT NOT NULL DEFAULT ''")

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
                " completed, steps, error, warm FROM vms WHERE plan=? AND vm_id=?",
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
                " completed, steps, error, warm FROM vms WHERE plan=? ORDER BY rowid",
                (plan,),
            ).fetchall()
        return [_vm(r) for r in rows]

    def unfinished_warm(self) -> list[VmProgress]:
        """Warm VMs of every plan not finished yet (a deleted plan's may hold snapshots)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT plan, vm_id, vm_name, migration, target_name, phase, result, started,"
                " completed, steps, error, warm FROM vms WHERE warm != '' AND result = ''"
                " ORDER BY rowid"
            ).fetchall()
        return [_vm(r) for r in rows]

    def put_vm(self, vm: VmProgress) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO vms (plan, vm_id, vm_name, migration, target_name, phase,"
                " result, started, completed, steps, error, warm) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
                _forget_copy(db, disk)
                db.execute(
                    "INSERT OR REPLACE INTO disks (disk, size, chunk_size) VALUES (?,?,?)",
                    (disk, size, chunk_size),
                )
        rec = self.get_disk(disk)
        assert rec is not None
        return rec

    def finish_disk(
        self, disk: str, source_digest: str, target_digest: str, when: str, change_id: str = ""
    ) -> None:
        """Mark the full copy done; with ``change_id`` (a warm migration's initial snapshot)
        it is also recorded as round 0, the change id the first precopy round starts from."""
        with self._tx() as db:
            db.execute(
                "UPDATE disks SET source_digest=?, target_digest=?, completed=? WHERE disk=?",
                (source_digest, target_digest, when, disk),
            )
            if change_id:
                written = db.execute(
                    "SELECT coalesce(sum(data_bytes), 0) FROM chunks WHERE disk=?", (disk,)
                ).fetchone()[0]
                db.execute(
                    "INSERT OR REPLACE INTO rounds (disk, round, change_id, started, completed,"
                    " source_digest, target_digest, bytes_written) VALUES (?,0,?,?,?,?,?,?)",
                    (disk, change_id, when, when, source_digest, target_digest, written),
                )

    def reset_disk(self, disk: str) -> None:
        """Forget a disk's copy entirely (its target was removed or found corrupt)."""
        with self._tx() as db:
            _forget_copy(db, disk)
            db.execute("DELETE FROM disks WHERE disk=?", (disk,))

    def done_chunks(self, disk: str) -> dict[int, tuple[bytes, int]]:
        """Chunks already copied and durable on the target: index -> (hash, data bytes)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, hash, data_bytes FROM chunks WHERE disk=?", (disk,)
            ).fetchall()
        return {r[0]: (bytes(r[1]), r[2]) for r in rows}

    def record_chunks(self, disk: str, chunks: Iterable[tuple[int, bytes, int]]) -> None:
        """Mark chunks copied (and done in the current round, if any); call only after the
        target has made them durable."""
        rows = [(disk, i, h, n) for i, h, n in chunks]
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO chunks (disk, idx, hash, data_bytes) VALUES (?,?,?,?)",
                rows,
            )
            db.executemany(
                "UPDATE round_chunks SET done=1 WHERE disk=? AND idx=?",
                [(disk, i) for _d, i, _h, _n in rows],
            )

    # -- warm migration: copy rounds -------------------------------------------------------

    def begin_round(
        self,
        disk: str,
        round: int,
        chunks: Iterable[int],
        *,
        changes: str = "",
        change_id: str = "",
        when: str = "",
    ) -> RoundRecord:
        """Durably mark the chunks a precopy round changes as to be copied, in one transaction.

        Their recorded hashes are dropped (the target holds an older version of them) and kept
        as ``prev_hash``; chunks an unfinished earlier round left uncopied are carried over, to
        be written whole.  Called again for the round already begun, with the same
        ``changes``, it changes nothing, so chunks recorded since are not copied again.
        Raises RoundError for a round older than the last one, for different changes under
        the same number, or when the disk has no finished copy to build on.
        """
        if round < 1:
            raise RoundError(f"disk {disk}: precopy rounds are numbered from 1, not {round}")
        with self._tx() as db:
            last = _last_round(db, disk, completed=False)
            if last is not None and last.round == round:
                if last.changes != changes:
                    raise RoundError(
                        f"disk {disk}: round {round} was begun with other changed areas"
                        f" ({last.changes}, now {changes})"
                    )
                return last
            if last is not None and last.round > round:
                raise RoundError(f"disk {disk}: round {round} is older than round {last.round}")
            row = db.execute("SELECT completed FROM disks WHERE disk=?", (disk,)).fetchone()
            if row is None or not (row[0] or last is not None):
                raise RoundError(f"disk {disk}: no finished copy to apply round {round} to")
            db.execute("DELETE FROM round_chunks WHERE disk=? AND done=1", (disk,))
            db.execute("UPDATE round_chunks SET whole=1 WHERE disk=?", (disk,))
            idxs = sorted(set(chunks))
            db.executemany(
                "INSERT OR IGNORE INTO round_chunks (disk, idx, prev_hash, whole, done)"
                " VALUES (?, ?, (SELECT hash FROM chunks WHERE disk=? AND idx=?), 0, 0)",
                [(disk, i, disk, i) for i in idxs],
            )
            db.executemany("DELETE FROM chunks WHERE disk=? AND idx=?", [(disk, i) for i in idxs])
            count = db.execute(
                "SELECT count(*) FROM round_chunks WHERE disk=?", (disk,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO rounds (disk, round, change_id, changes, chunks, started)"
                " VALUES (?,?,?,?,?,?)",
                (disk, round, change_id, changes, count, when),
            )
            db.execute(
                "UPDATE disks SET source_digest='', target_digest='', completed='' WHERE disk=?",
                (disk,),
            )
            rec = _last_round(db, disk, completed=False)
        assert rec is not None
        return rec

    def round_chunks(self, disk: str) -> dict[int, RoundChunk]:
        """The chunks the disk's current round copies, done or not (empty between rounds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, prev_hash, whole, done FROM round_chunks WHERE disk=?", (disk,)
            ).fetchall()
        return {
            r[0]: RoundChunk(None if r[1] is None else bytes(r[1]), bool(r[2]), bool(r[3]))
            for r in rows
        }

    def finish_round(
        self, disk: str, round: int, source_digest: str, target_digest: str, when: str
    ) -> RoundRecord:
        """Complete a round: the disk is whole again with these digests (one transaction)."""
        with self._tx() as db:
            left = db.execute(
                "SELECT count(*) FROM round_chunks WHERE disk=? AND done=0", (disk,)
            ).fetchone()[0]
            if left:
                raise RoundError(f"disk {disk}: round {round} still has {left} chunks to copy")
            written = db.execute(
                "SELECT coalesce(sum(c.data_bytes), 0) FROM round_chunks r JOIN chunks c"
                " ON c.disk=r.disk AND c.idx=r.idx WHERE r.disk=?",
                (disk,),
            ).fetchone()[0]
            cur = db.execute(
                "UPDATE rounds SET completed=?, source_digest=?, target_digest=?, bytes_written=?"
                " WHERE disk=? AND round=?",
                (when, source_digest, target_digest, written, disk, round),
            )
            if cur.rowcount != 1:
                raise RoundError(f"disk {disk}: round {round} was never begun")
            db.execute("DELETE FROM round_chunks WHERE disk=?", (disk,))
            db.execute(
                "UPDATE disks SET source_digest=?, target_digest=?, completed=? WHERE disk=?",
                (source_digest, target_digest, when, disk),
            )
            rec = _last_round(db, disk, completed=True)
        assert rec is not None and rec.round == round
        return rec

    def last_round(self, disk: str, *, completed: bool = False) -> RoundRecord | None:
        """The disk's latest round (only completed ones with ``completed``), or None.

        A warm migration resumes from here: an unfinished last round is continued under its
        number; the next round asks for the areas changed since a round's ``change_id``.
        """
        with self._lock:
            return _last_round(self._db, disk, completed=completed)

    def rounds(self, disk: str) -> list[RoundRecord]:
        """Every round of the disk, oldest first (for status: bytes and times per round)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ROUND_COLUMNS} FROM rounds WHERE disk=? ORDER BY round", (disk,)
            ).fetchall()
        return [RoundRecord(*r) for r in rows]

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


_ROUND_COLUMNS = (
    "disk, round, change_id, changes, chunks, started, completed, source_digest,"
    " target_digest, bytes_written"
)


def _last_round(db: sqlite3.Connection, disk: str, *, completed: bool) -> RoundRecord | None:
    where = " AND completed != ''" if completed else ""
    row = db.execute(
        f"SELECT {_ROUND_COLUMNS} FROM rounds WHERE disk=?{where} ORDER BY round DESC LIMIT 1",
        (disk,),
    ).fetchone()
    return RoundRecord(*row) if row else None


def _forget_copy(db: sqlite3.Connection, disk: str) -> None:
    """Drop what a disk's copy recorded (chunks and rounds), keeping its disks row."""
    for table in ("chunks", "round_chunks", "rounds"):
        db.execute(f"DELETE FROM {table} WHERE disk=?", (disk,))


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
