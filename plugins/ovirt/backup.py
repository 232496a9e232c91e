"""Warm migration from oVirt through incremental backup: the VM's ``backups`` and
``checkpoints`` services and the imageio daemon's dirty extents.

How the core's warm words map onto an engine that allows one active backup per VM:

- a *snapshot* is a backup (its id is the backup's id): ``create_snapshot`` starts one of
  every disk of the VM, incremental from the VM's newest checkpoint when there is one, and
  waits for it to be ``ready``; its transfers read each disk as it was when it started;
- a disk's *change id* at a snapshot is the backup's ``to_checkpoint_id`` (the checkpoint the
  backup made), "" for a disk without incremental backup (``disk.backup``);
- the *changed extents* since a change id are the dirty extents the daemon reports for the
  backup's transfer of the disk (``extents?context=dirty``) when the backup started from that
  checkpoint; from any other, every allocated area (a correct but larger copy);
- *removing* a snapshot finalizes the backup and waits for ``succeeded``; its checkpoint stays
  (the next round starts from it) and the checkpoints this tool made before it are removed
  from the root of the chain (the engine removes only the root); ``release`` removes the rest
  when the migration is over.

The pipeline already removes the previous snapshot before it takes the next (MTV-1656's safe
order), so one backup is active at a time, as the engine requires.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from plugins.ovirt.imageio import TransferDisk, _fault
from plugins.ovirt.session import Login
from reconciler.sources import OWN_SNAPSHOT_PREFIX, SourceError
from reconciler.transfer.extents import Extent

log = logging.getLogger(__name__)
PHASE_TIMEOUT = 600.0  # seconds for a backup to become ready or to finish
POLL = 0.2
_ENDED = ("succeeded", "failed")


def _v(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


class Backups:
    """The warm methods of :class:`plugins.ovirt.plugin.OvirtConnection`, on its session."""

    def __init__(self, login: Login, proxy: bool, retry_seconds: float) -> None:
        self.login, self.proxy, self.retry_seconds = login, proxy, retry_seconds
        # checkpoints this connection made, with those named by its own backups the engine
        # still lists: the only ones it removes
        self._made: dict[str, set[str]] = {}

    def _call(self, what: str, fn: Any) -> Any:
        import ovirtsdk4 as sdk

        try:
            with self.login.lock:
                return fn()
        except sdk.Error as exc:
            raise SourceError(
                f"the oVirt engine {self.login.endpoint.host}: {what}: {_fault(exc)}"
            ) from exc

    def _vm(self, vm_id: str) -> Any:
        return self.login.system().vms_service().vm_service(vm_id)

    def _disks(self, vm_id: str) -> list[Any]:
        """The VM's disks, read now (attachments, then each disk)."""
        system = self.login.system()
        attachments = self._call(
            f"reading the disks of VM {vm_id}",
            self._vm(vm_id).disk_attachments_service().list,
        )
        return [
            self._call(
                f"reading disk {a.disk.id}", system.disks_service().disk_service(a.disk.id).get
            )
            for a in attachments or ()
            if a.disk is not None
        ]

    def _backup(self, vm_id: str, backup_id: str) -> Any | None:
        import ovirtsdk4 as sdk

        service = self._vm(vm_id).backups_service().backup_service(backup_id)
        try:
            with self.login.lock:
                return service.get()
        except sdk.NotFoundError:
            return None
        except sdk.Error as exc:
            raise SourceError(
                f"the oVirt engine {self.login.endpoint.host}: reading backup {backup_id} of "
                f"VM {vm_id}: {_fault(exc)}"
            ) from exc

    def _wait(self, vm_id: str, backup_id: str, phases: tuple[str, ...]) -> Any:
        deadline = time.monotonic() + PHASE_TIMEOUT
        while True:
            b = self._backup(vm_id, backup_id)
            if b is None:
                raise SourceError(f"backup {backup_id} of VM {vm_id} is gone")
            phase = _v(b.phase)
            if phase in phases:
                return b
            if phase in _ENDED or time.monotonic() > deadline:
                raise SourceError(
                    f"backup {backup_id} of VM {vm_id} is {phase}, not {' or '.join(phases)}"
                )
            time.sleep(POLL)

    def _checkpoints(self, vm_id: str) -> list[Any]:
        """The VM's checkpoints, root first (each one's parent before it)."""
        found = self._call(
            f"reading the checkpoints of VM {vm_id}", self._vm(vm_id).checkpoints_service().list
        )
        by_parent = {c.parent_id or "": c for c in found or ()}
        chain, at = [], ""
        while at in by_parent:
            chain.append(by_parent[at])
            at = by_parent[at].id
        return chain

    # -- the WarmSource methods ------------------------------------------------------------

    def disk_change_tracking(self, vm_id: str) -> dict[str, bool]:
        """Each disk's incremental backup (``disk.backup: incremental``), read now."""
        return {d.id: _v(d.backup) == "incremental" for d in self._disks(vm_id)}

    def create_snapshot(self, vm_id: str, name: str, description: str = "") -> str:
        """Start a backup of every disk of the VM, from its newest checkpoint, and wait for
        it to be ready; the backup's description is ``name`` (found again by it)."""
        from ovirtsdk4 import types

        disks = self._disks(vm_id)
        chain = self._checkpoints(vm_id)
        request = types.Backup(
            description=name,
            disks=[types.Disk(id=d.id) for d in disks],
            from_checkpoint_id=chain[-1].id if chain else None,
        )
        b = self._call(
            f"starting a backup of VM {vm_id} (a warm migration's {description or name})",
            lambda: self._vm(vm_id).backups_service().add(request),
        )
        if b.to_checkpoint_id:
            self._made.setdefault(vm_id, set()).add(b.to_checkpoint_id)
        self._wait(vm_id, b.id, ("ready",))
        return b.id

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Finalize the backup (absent or ended is fine) and wait until it succeeded; then
        the older checkpoints this tool made go, the backup's own stays."""
        b = self._backup(vm_id, snapshot_id)
        if b is not None and _v(b.phase) not in _ENDED:
            if _v(b.phase) in ("initializing", "starting"):
                b = self._wait(vm_id, snapshot_id, ("ready",))
            if _v(b.phase) == "ready":
                service = self._vm(vm_id).backups_service().backup_service(snapshot_id)
                self._call(f"finalizing backup {snapshot_id} of VM {vm_id}", service.finalize)
            self._wait(vm_id, snapshot_id, _ENDED)
        self._prune(vm_id, keep_newest=True)

    def snapshots(self, vm_id: str) -> dict[str, str]:
        """The VM's backups not ended yet, id to description."""
        found = self._call(
            f"reading the backups of VM {vm_id}", self._vm(vm_id).backups_service().list
        )
        return {
            b.id: b.description or b.name or "" for b in found or () if _v(b.phase) not in _ENDED
        }

    def change_ids(self, vm_id: str, snapshot_id: str) -> dict[str, str]:
        """The backup's checkpoint for each disk with incremental backup, "" for the others."""
        b = self._backup(vm_id, snapshot_id)
        if b is None:
            raise SourceError(f"the oVirt engine has no backup {snapshot_id} of VM {vm_id}")
        return {
            d.id: (b.to_checkpoint_id or "") if _v(d.backup) == "incremental" else ""
            for d in self._disks(vm_id)
        }

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]:
        """The dirty extents of the backup's transfer of the disk when the backup started
        from ``change_id``; none when ``change_id`` is the backup's own checkpoint; every
        allocated area otherwise (a checkpoint the backup did not start from)."""
        b = self._backup(vm_id, snapshot_id)
        if b is None:
            raise SourceError(f"the oVirt engine has no backup {snapshot_id} of VM {vm_id}")
        if change_id and change_id == b.to_checkpoint_id:
            return []
        reader = self.open_disk(vm_id, disk_key, snapshot_id)
        try:
            if change_id and change_id == b.from_checkpoint_id:
                return reader.dirty_extents()
            log.warning(
                "backup %s of VM %s started from checkpoint %s, not %s: copying every "
                "allocated area of disk %s",
                snapshot_id,
                vm_id,
                b.from_checkpoint_id,
                change_id,
                disk_key,
            )
            return [Extent(e.start, e.length, False) for e in reader.extents() if not e.zero]
        finally:
            reader.close()

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str) -> TransferDisk:
        """A reader of the disk as the backup holds it (an image transfer with ``backup``)."""
        system = self.login.system()
        disk = self._call(
            f"reading disk {disk_key}", system.disks_service().disk_service(disk_key).get
        )
        return TransferDisk(
            self.login,
            disk_key,
            int(disk.provisioned_size or 0),
            disk.alias or disk.name or disk_key,
            proxy=self.proxy,
            retry_seconds=self.retry_seconds,
            backup_id=snapshot_id,
        )

    def release(self, vm_id: str) -> None:
        """The migration is over (or failed, or was canceled): every checkpoint this tool
        made goes, while it is the root of the chain."""
        self._prune(vm_id, keep_newest=False)

    def _ours(self, vm_id: str) -> set[str]:
        found = self._call(
            f"reading the backups of VM {vm_id}", self._vm(vm_id).backups_service().list
        )
        named = {
            b.to_checkpoint_id
            for b in found or ()
            if (b.description or "").startswith(OWN_SNAPSHOT_PREFIX) and b.to_checkpoint_id
        }
        return named | self._made.get(vm_id, set())

    def _prune(self, vm_id: str, keep_newest: bool) -> None:
        """Remove this tool's checkpoints from the root of the chain: a checkpoint another
        backup made stops it (it and what follows are not ours to remove, and the engine
        removes only the root)."""
        ours = self._ours(vm_id)
        chain = self._checkpoints(vm_id)
        if keep_newest and chain:
            chain = chain[:-1]
        for c in chain:
            if c.id not in ours:
                if keep_newest:
                    return
                log.warning(
                    "checkpoint %s of VM %s was not made by mtv-gitops: the checkpoints after "
                    "it stay (the engine removes only the root of the chain)",
                    c.id,
                    vm_id,
                )
                return
            service = self._vm(vm_id).checkpoints_service().checkpoint_service(c.id)
            self._call(f"removing checkpoint {c.id} of VM {vm_id}", service.remove)
            self._made.get(vm_id, set()).discard(c.id)
