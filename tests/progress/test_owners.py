"""The progress store is one SQLite database read and written by owners through small stores;
a state dir made before the split (or before warm migration) opens unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reconciler.progress.checkpoints import CheckpointStore
from reconciler.progress.db import Database
from reconciler.progress.keyvalue import KeyValueStore
from reconciler.progress.pipeline import MigrationRecord, PipelineStore, VmProgress
from reconciler.progress.store import ProgressStore
from reconciler.progress.validations import ValidationRecord, ValidationStore

# the schema of a state dir made before warm migration existed (no vms.warm column)
OLD_SCHEMA = """
CREATE TABLE vms (
    plan TEXT NOT NULL, vm_id TEXT NOT NULL, vm_name TEXT NOT NULL DEFAULT '',
    migration TEXT NOT NULL DEFAULT '', target_name TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT 'Pending', result TEXT NOT NULL DEFAULT '',
    started TEXT NOT NULL DEFAULT '', completed TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]', error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (plan, vm_id));
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO vms (plan, vm_id, vm_name, phase, result, steps)
    VALUES ('ns/p', 'vm-1', 'one', 'Completed', 'Succeeded', '[{"name": "CopyDisks"}]');
INSERT INTO kv VALUES ('git.last_read', 'abc123');
"""


def test_an_old_state_dir_opens_and_keeps_its_records(tmp_path: Path) -> None:
    db = tmp_path / "progress.db"
    with sqlite3.connect(db) as con:
        con.executescript(OLD_SCHEMA)
    store = ProgressStore(db)
    try:
        [vm] = store.vms("ns/p")
        assert (vm.vm_name, vm.result, vm.warm) == ("one", "Succeeded", None)
        assert vm.steps == [{"name": "CopyDisks"}]
        assert store.get("git.last_read") == "abc123"
        vm.warm = {"precopies": []}
        store.put_vm(vm)  # the added column takes a warm record
        assert store.get_vm("ns/p", "vm-1").warm == {"precopies": []}
    finally:
        store.close()


def test_each_owner_reads_its_own_tables_of_the_one_database(tmp_path: Path) -> None:
    db = tmp_path / "progress.db"
    store = ProgressStore(db)
    store.put_vm(VmProgress("ns/p", "vm-1", "one", "p-1"))
    store.put_migration(MigrationRecord("ns/p", "p-1", started="t0"))
    store.start_disk("d", 8, 4)
    store.record_chunks("d", [(0, b"h", 4)])
    store.put_validations([ValidationRecord("ns/src", "vm-1", "1", "r", "i", {}, "t0")])
    store.set("k", "v")
    store.close()

    database = Database(db)
    try:
        assert [v.vm_name for v in PipelineStore(database).vms("ns/p")] == ["one"]
        assert PipelineStore(database).get_migration("ns/p", "p-1").started == "t0"
        assert CheckpointStore(database).done_chunks("d") == {0: (b"h", 4)}
        assert set(ValidationStore(database).validations("ns/src")) == {"vm-1"}
        assert KeyValueStore(database).get("k") == "v"
    finally:
        database.close()


def test_a_transfer_job_keeps_checkpoints_alone(tmp_path: Path) -> None:
    """A checkpoint store on its own database holds disks and chunks, as a transfer Job's."""
    checkpoints = CheckpointStore(Database(tmp_path / "job.db"))
    try:
        rec = checkpoints.start_disk("d", 8, 4)
        assert (rec.size, rec.chunk_size, rec.completed) == (8, 4, "")
        checkpoints.record_chunks("d", [(0, b"a", 4), (1, b"b", 0)])
        checkpoints.finish_disk("d", "s", "t", "now")
        assert checkpoints.get_disk("d").completed == "now"
    finally:
        checkpoints.close()
