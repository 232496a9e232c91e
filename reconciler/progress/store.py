"""The progress store: what each VM's pipeline and each disk's copy has done so far.

Status files in git are a projection of this store; the store is the truth a restarted
reconciler continues from.  One SQLite file in WAL mode (:mod:`.db`), safe to share between
threads, read and written by its owners through small typed stores:

- :class:`~.pipeline.PipelineStore` -- the VMs' pipelines and the Migrations (the pass);
- :class:`~.checkpoints.CheckpointStore` -- disks, durable chunks, copy rounds (the transfer
  engine; a transfer Job keeps its own database of these alone);
- :class:`~.validations.ValidationStore` -- what each VM was validated with (validation);
- :class:`~.keyvalue.KeyValueStore` -- small settings (git revisions, rule sets seen).

:class:`ProgressStore` is all of them over one database: what the reconciler opens.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.progress.checkpoints import (
    CheckpointStore,
    DiskRecord,
    RoundChunk,
    RoundError,
    RoundRecord,
)
from reconciler.progress.db import Database
from reconciler.progress.keyvalue import KeyValueStore
from reconciler.progress.pipeline import (
    MigrationRecord,
    PipelineStore,
    PlanLabels,
    VmFacts,
    VmProgress,
)
from reconciler.progress.validations import ValidationRecord, ValidationStore

__all__ = [
    "CheckpointStore",
    "DiskRecord",
    "KeyValueStore",
    "MigrationRecord",
    "PipelineStore",
    "PlanLabels",
    "ProgressStore",
    "RoundChunk",
    "RoundError",
    "RoundRecord",
    "ValidationRecord",
    "ValidationStore",
    "VmFacts",
    "VmProgress",
]


class ProgressStore(PipelineStore, CheckpointStore, ValidationStore, KeyValueStore):
    """Every owner's store over the one database at *path*."""

    def __init__(self, path: Path) -> None:
        super().__init__(Database(path))
        self.path = path
