"""The inventory store: the last inventory read from each provider, in the state directory.

One SQLite file (WAL) beside the progress store. A pass saves what it observed; only objects
whose record changed are written, so an estate where one VM changed costs one row. Commands that
must not touch a provider (``mtv-gitops inventory --cached``) read it back.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inventory_objects (
    provider TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (provider, kind, id));
CREATE TABLE IF NOT EXISTS inventory_providers (
    provider TEXT PRIMARY KEY, read_at TEXT NOT NULL, default_storage TEXT NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Cached:
    inventory: Inventory
    read_at: str  # ISO time of the pass that read it


class InventoryStore:
    """Safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def save(self, provider: str, inv: Inventory) -> int:
        """Record ``inv`` as the provider's inventory; returns how many objects changed."""
        new = {
            (kind, obj.id): json.dumps(dataclasses.asdict(obj), sort_keys=True)
            for kind, objs in (
                ("vm", inv.vms),
                ("network", inv.networks),
                ("storage", inv.storages),
            )
            for obj in objs
        }
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            old = {
                (kind, id_): doc
                for kind, id_, doc in self._db.execute(
                    "SELECT kind, id, doc FROM inventory_objects WHERE provider = ?", (provider,)
                )
            }
            changed = [(k, d) for k, d in new.items() if old.get(k) != d]
            gone = [k for k in old if k not in new]
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO inventory_objects VALUES (?, ?, ?, ?)",
                    [(provider, kind, id_, doc) for (kind, id_), doc in changed],
                )
                self._db.executemany(
                    "DELETE FROM inventory_objects WHERE provider = ? AND kind = ? AND id = ?",
                    [(provider, kind, id_) for kind, id_ in gone],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO inventory_providers VALUES (?, ?, ?)",
                    (provider, now, inv.default_storage),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(changed) + len(gone)

    def load(self, provider: str) -> Cached | None:
        """The provider's last saved inventory, or None when no pass has read it."""
        with self._lock:
            meta = self._db.execute(
                "SELECT read_at, default_storage FROM inventory_providers WHERE provider = ?",
                (provider,),
            ).fetchone()
            if meta is None:
                return None
            rows = self._db.execute(
                "SELECT kind, doc FROM inventory_objects WHERE provider = ? ORDER BY kind, id",
                (provider,),
            ).fetchall()
        inv = Inventory(default_storage=meta[1])
        for kind, doc in rows:
            data = json.loads(doc)
            if kind == "vm":
                inv.vms.append(_vm(data))
            elif kind == "network":
                inv.networks.append(Network(**data))
            else:
                inv.storages.append(Storage(**data))
        return Cached(inv, meta[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _vm(data: dict[str, Any]) -> VM:
    data["disks"] = tuple(Disk(**d) for d in data.get("disks", ()))
    data["nics"] = tuple(Nic(**n) for n in data.get("nics", ()))
    data["concerns"] = tuple(data.get("concerns", ()))
    return VM(**data)
