"""The one SQLite database (WAL) under the progress stores, and its schema.

Each owner reads and writes its own tables through its own small store (:mod:`.pipeline`,
:mod:`.checkpoints`, :mod:`.validations`, :mod:`.keyvalue`); they share one file, one
connection and one lock, so one transaction never interleaves with another thread's.  The
schema is the whole database's, in one place, so a state dir made by any earlier version opens
(tables are only ever added, columns only added with defaults: see :func:`_migrate`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
-- the VMs' pipelines and the Migrations (pipeline.py)
CREATE TABLE IF NOT EXISTS vms (
    plan TEXT NOT NULL, vm_id TEXT NOT NULL, vm_name TEXT NOT NULL DEFAULT '',
    migration TEXT NOT NULL DEFAULT '', target_name TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT 'Pending', result TEXT NOT NULL DEFAULT '',
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]', error TEXT NOT NULL DEFAULT '',
    warm TEXT NOT NULL DEFAULT '', facts TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, vm_id));
CREATE TABLE IF NOT EXISTS migrations (
    plan TEXT NOT NULL, migration TEXT NOT NULL,
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    result TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, migration));
-- what the metrics label a plan with, recorded by each pass (pipeline.py): the source
-- provider as MTV spells its type, Cold or Warm, Local or Remote, the plan's id
CREATE TABLE IF NOT EXISTS plans (
    plan TEXT PRIMARY KEY, uid TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '', target TEXT NOT NULL DEFAULT '');
-- every VM outcome ever recorded, once per (plan, migration, VM): a counter never goes down
-- when a later Migration overwrites a VM's record (pipeline.py)
CREATE TABLE IF NOT EXISTS vm_outcomes (
    plan TEXT NOT NULL, migration TEXT NOT NULL, vm_id TEXT NOT NULL, result TEXT NOT NULL,
    PRIMARY KEY (plan, migration, vm_id));
-- the transfer engine's checkpoints: disks, copied chunks, copy rounds (checkpoints.py)
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
-- small settings: git revisions read and pushed, rule sets seen (keyvalue.py)
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- what each VM was validated with (validations.py)
CREATE TABLE IF NOT EXISTS validations (
    provider TEXT NOT NULL, vm_id TEXT NOT NULL, rules_version TEXT NOT NULL,
    rules_digest TEXT NOT NULL, input_digest TEXT NOT NULL, result TEXT NOT NULL,
    validated TEXT NOT NULL, PRIMARY KEY (provider, vm_id));
"""


class Database:
    """One SQLite file in WAL mode, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        _migrate(self.db)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), rolled back when the block raises."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def revision(self) -> int:
        """Rows changed through this connection so far: the same number, the same data (the
        state folder's lock makes this process the database's only writer)."""
        with self.lock:
            return self.db.total_changes

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Every row *sql* selects, read under the lock."""
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def query_one(self, sql: str, args: tuple = ()) -> tuple | None:
        with self.lock:
            return self.db.execute(sql, args).fetchone()


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a database made by an earlier version up to :data:`SCHEMA`."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(vms)")}
    if "warm" not in columns:  # a store made before warm migration existed
        db.execute("ALTER TABLE vms ADD COLUMN warm TEXT NOT NULL DEFAULT ''")
    if "facts" not in columns:  # before metrics: filled on first read (metric_view)
        db.execute("ALTER TABLE vms ADD COLUMN facts TEXT NOT NULL DEFAULT ''")
    # what a metrics scrape reads (pipeline.py, metric_view), without the records' big columns
    db.execute(
        "CREATE INDEX IF NOT EXISTS vms_by_result "
        "ON vms (result, plan, migration, vm_id, phase, vm_name, facts)"
    )


class Table:
    """Base of the per-owner stores: each reads and writes its tables of one database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def close(self) -> None:
        self.database.close()
