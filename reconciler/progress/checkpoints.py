"""The transfer engine's checkpoints: each disk's copy, its durable chunks, its copy rounds.

A chunk is recorded only after the target made it durable, so a killed copy resumes from here
without copying a recorded byte range again; a warm migration's precopy rounds are recorded
per disk (round 0 is the full copy), so a round a killed pass left is continued, not redone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.progress.db import Table


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


class CheckpointStore(Table):
    """Disks, chunks and rounds of the transfer engine; each call one transaction."""

    # -- disks and copied chunks -----------------------------------------------------------

    def get_disk(self, disk: str) -> DiskRecord | None:
        row = self.database.query_one(
            "SELECT disk, size, chunk_size, source_digest, target_digest, completed"
            " FROM disks WHERE disk=?",
            (disk,),
        )
        return DiskRecord(*row) if row else None

    def start_disk(self, disk: str, size: int, chunk_size: int) -> DiskRecord:
        """Begin (or continue) a disk copy; a changed geometry discards stale chunks."""
        with self.database.tx() as db:
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
        with self.database.tx() as db:
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
        with self.database.tx() as db:
            _forget_copy(db, disk)
            db.execute("DELETE FROM disks WHERE disk=?", (disk,))

    def done_chunks(self, disk: str) -> dict[int, tuple[bytes, int]]:
        """Chunks already copied and durable on the target: index -> (hash, data bytes)."""
        rows = self.database.query("SELECT idx, hash, data_bytes FROM chunks WHERE disk=?", (disk,))
        return {r[0]: (bytes(r[1]), r[2]) for r in rows}

    def record_chunks(self, disk: str, chunks: Iterable[tuple[int, bytes, int]]) -> None:
        """Mark chunks copied (and done in the current round, if any); call only after the
        target has made them durable."""
        rows = [(disk, i, h, n) for i, h, n in chunks]
        with self.database.tx() as db:
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
        with self.database.tx() as db:
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
        rows = self.database.query(
            "SELECT idx, prev_hash, whole, done FROM round_chunks WHERE disk=?", (disk,)
        )
        return {
            r[0]: RoundChunk(None if r[1] is None else bytes(r[1]), bool(r[2]), bool(r[3]))
            for r in rows
        }

    def finish_round(
        self, disk: str, round: int, source_digest: str, target_digest: str, when: str
    ) -> RoundRecord:
        """Complete a round: the disk is whole again with these digests (one transaction)."""
        with self.database.tx() as db:
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
        with self.database.lock:
            return _last_round(self.database.db, disk, completed=completed)

    def rounds(self, disk: str) -> list[RoundRecord]:
        """Every round of the disk, oldest first (for status: bytes and times per round)."""
        rows = self.database.query(
            f"SELECT {_ROUND_COLUMNS} FROM rounds WHERE disk=? ORDER BY round", (disk,)
        )
        return [RoundRecord(*r) for r in rows]


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
