"""Small settings beside the progress: the git revisions read and pushed, rule sets seen."""

from __future__ import annotations

from reconciler.progress.db import Table


class KeyValueStore(Table):
    """String values by key; each call one transaction."""

    def get(self, key: str, default: str = "") -> str:
        row = self.database.query_one("SELECT value FROM kv WHERE key=?", (key,))
        return row[0] if row else default

    def set(self, key: str, value: str) -> None:
        with self.database.tx() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?,?)", (key, value))
