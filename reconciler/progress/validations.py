"""What each VM was validated with, and what the rules said: validation's own records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconciler.progress.db import Table


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


class ValidationStore(Table):
    """Validation records per source Provider; each call one transaction."""

    def validations(self, provider: str) -> dict[str, ValidationRecord]:
        rows = self.database.query(
            "SELECT provider, vm_id, rules_version, rules_digest, input_digest, result,"
            " validated FROM validations WHERE provider=?",
            (provider,),
        )
        return {r[1]: ValidationRecord(*r[:5], json.loads(r[5]), r[6]) for r in rows}

    def put_validations(self, records: Iterable[ValidationRecord]) -> None:
        with self.database.tx() as db:
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
        with self.database.tx() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT vm_id FROM validations WHERE provider=?", (provider,))
            ]
            db.executemany(
                "DELETE FROM validations WHERE provider=? AND vm_id=?",
                [(provider, i) for i in ids if i not in keep],
            )
