"""Snapshots and changed block tracking against the simulator (extended in Go with CBT):
the ground warm migration stands on."""

from __future__ import annotations

import pytest

from plugins.vsphere.plugin import VsphereConnection
from reconciler.sources import SourceError
from tests.support.vsphere import (
    add_disk,
    connect,
    content,
    datastore,
    first_vm,
    guest_write,
    start_simulator,
    wait,
    write_flat_disk,
)

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture
def cbt_vm():
    from pyVmomi import vim

    sim = start_simulator(hosts=1, vms=1, datastores=1)
    conn = connect(sim)
    vm = first_vm(conn)
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    disk = add_disk(conn.si, vm, 8 * MiB, datastore(conn, "LocalDS_0"))
    data = bytearray(content(8 * MiB, seed=5))
    write_flat_disk(sim, disk.backing.fileName, bytes(data))
    conn.close()
    conn = connect(sim)
    conn.inventory()
    yield sim, conn, vm._moId, str(disk.key), disk.backing.fileName, data
    conn.close()
    sim.stop()


def test_changed_areas_between_two_snapshots_are_what_the_guest_wrote(cbt_vm) -> None:
    sim, conn, vm_id, key, disk_file, data = cbt_vm
    assert isinstance(conn, VsphereConnection)
    vm = next(v for v in conn.inventory().vms if v.id == vm_id)
    assert vm.change_tracking is True  # the inventory says CBT is on
    first = conn.create_snapshot(vm_id, "mtv-gitops-precopy-1")
    ids = conn.change_ids(vm_id, first)
    assert ids[key].endswith("/1")
    for offset, blob in ((1 * MiB, b"\x11" * 4096), (5 * MiB + 512, b"\x22" * 65536)):
        guest_write(sim, disk_file, offset, blob)
        data[offset : offset + len(blob)] = blob
    conn.remove_snapshot(vm_id, first)  # the safe order: ids stored, previous removed, next taken
    second = conn.create_snapshot(vm_id, "mtv-gitops-precopy-2")
    changed = conn.changed_extents(vm_id, second, key, ids[key])
    assert [(e.start, e.length) for e in changed] == [(1 * MiB, 4096), (5 * MiB + 512, 65536)]
    assert all(not e.zero for e in changed)
    reader = conn.open_disk(vm_id, key, snapshot_id=second)
    try:
        for e in changed:  # the snapshot's disk holds what was written
            assert reader.read(e.start, e.length) == bytes(data[e.start : e.end])
    finally:
        reader.close()
    nothing = conn.change_ids(vm_id, second)[key]
    third = conn.create_snapshot(vm_id, "mtv-gitops-precopy-3")
    assert conn.changed_extents(vm_id, third, key, nothing) == []  # no write since
    conn.remove_snapshot(vm_id, second)
    conn.remove_snapshot(vm_id, third)
    conn.remove_snapshot(vm_id, third)  # removing twice is fine


def test_a_bad_change_id_is_a_source_error(cbt_vm) -> None:
    from pyVmomi import vmodl

    _, conn, vm_id, key, _, _ = cbt_vm
    snap = conn.create_snapshot(vm_id, "s")
    with pytest.raises((SourceError, vmodl.MethodFault)):
        conn.changed_extents(vm_id, snap, key, "not-a-change-id")


def test_a_warm_migrations_own_snapshots_are_not_reported_as_the_users(cbt_vm) -> None:
    """The validation document counts the user's snapshots only; the id listing and the
    per-disk tracking a warm plan reads are there for every snapshot and disk."""
    _, conn, vm_id, key, _, _ = cbt_vm
    ours = conn.create_snapshot(vm_id, "mtv-gitops-plan-1-0")
    conn.inventory()  # the cache applies the change
    doc = conn.validation_input(vm_id)
    assert doc["snapshotCount"] == 0 and "snapshot" not in doc
    assert conn.snapshots(vm_id) == {ours: "mtv-gitops-plan-1-0"}
    theirs = conn.create_snapshot(vm_id, "before patching")
    conn.inventory()
    doc = conn.validation_input(vm_id)
    assert doc["snapshotCount"] == 1 and doc["snapshot"]["id"] == theirs
    assert conn.snapshots(vm_id) == {ours: "mtv-gitops-plan-1-0", theirs: "before patching"}
    tracked = conn.disk_change_tracking(vm_id)
    assert tracked[key] is True and all(tracked.values())
