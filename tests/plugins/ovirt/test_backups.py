"""Warm reads through incremental backups, against the test engine and the real ovirt-imageio
daemon serving qemu-nbd exports of qcow2 images with persistent dirty bitmaps: a backup's
reader returns each disk as it was when the backup started, one active backup per VM, the
dirty extents since the backup's checkpoint (every allocated area since another one), and
only the checkpoints mtv-gitops made are removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.plugin_manager import connect
from reconciler.sources import SourceError, warm_source
from tests.support.ovirt_engine import World, pattern, qcow2_with_holes

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def _app(world: World, folder: Path, name: str) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    image = qcow2_with_holes(folder / f"{name}.qcow2", 8 * MiB, [(0, pattern(MiB, 3))])
    vm = world.engine.add_vm(
        name, [(image, "qcow2", "data1", "virtio")], [], status="up", incremental=True
    )
    return vm, world.engine.vms[vm].attachments[0].disk.id


def test_a_backup_reads_the_disk_as_it_was_and_a_second_one_is_refused(
    world: World, tmp_path: Path
) -> None:
    e = world.engine
    vm, disk = _app(world, tmp_path, "pit")
    conn = warm_source(connect("ovirt", e.url, e.secret(), {}))
    try:
        assert conn.disk_change_tracking(vm) == {disk: True}
        first = conn.create_snapshot(vm, "mtv-gitops-pit-0")
        e.guest_write(disk, 0, b"\x77" * 4096)  # the running guest writes on
        reader = conn.open_disk(vm, disk, snapshot_id=first)
        try:
            assert reader.read(0, 4096) == pattern(MiB, 3)[:4096]
        finally:
            reader.close()
        with pytest.raises(SourceError, match="during a backup"):
            conn.create_snapshot(vm, "mtv-gitops-pit-1")
        [ckpt] = e.vms[vm].checkpoints
        assert conn.change_ids(vm, first) == {disk: ckpt.id}
        conn.remove_snapshot(vm, first)
        second = conn.create_snapshot(vm, "mtv-gitops-pit-1")
        changed = conn.changed_extents(vm, second, disk, ckpt.id)
        assert [(x.start, x.length) for x in changed] == [(0, 64 * 1024)]  # the bitmap's grain
        reader = conn.open_disk(vm, disk, snapshot_id=second)
        try:
            assert reader.read(0, 4096) == b"\x77" * 4096
        finally:
            reader.close()
        conn.remove_snapshot(vm, second)
        conn.release(vm)  # type: ignore[attr-defined]
        assert e.vms[vm].checkpoints == [] and e.checkpoint_bitmaps(disk) == []
        assert e.open_transfers() == []
    finally:
        conn.close()


def test_changes_since_an_older_checkpoint_are_every_allocated_area_and_others_stay(
    world: World, tmp_path: Path
) -> None:
    from ovirtsdk4 import types

    e = world.engine
    vm, disk = _app(world, tmp_path, "chain")
    conn = warm_source(connect("ovirt", e.url, e.secret(), {}))
    try:
        # another backup application's full backup: its checkpoint is the chain's root
        other = e._create_backup(e.vms[vm], types.Backup(disks=[types.Disk(id=disk)]))
        for _ in range(2):
            e._advance_backup(other)
        e._finalize_backup(other)
        e._advance_backup(other)
        theirs = other.to_checkpoint_id
        a = conn.create_snapshot(vm, "mtv-gitops-chain-0")
        ours = conn.change_ids(vm, a)[disk]
        conn.remove_snapshot(vm, a)
        e.guest_write(disk, 3 * MiB, b"\x55" * 512)
        b = conn.create_snapshot(vm, "mtv-gitops-chain-1")
        # b starts from ours: since theirs, every allocated area is reported
        since_theirs = conn.changed_extents(vm, b, disk, theirs)
        assert sum(x.length for x in since_theirs) >= MiB + 512
        since_ours = conn.changed_extents(vm, b, disk, ours)
        assert [(x.start, x.length) for x in since_ours] == [(3 * MiB, 64 * 1024)]
        conn.remove_snapshot(vm, b)
        conn.release(vm)  # type: ignore[attr-defined]
        # theirs is the root: the engine removes only the root, so ours stay behind it
        assert [c.id for c in e.vms[vm].checkpoints][0] == theirs
        assert len(e.vms[vm].checkpoints) == 3
    finally:
        conn.close()
