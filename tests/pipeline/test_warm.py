"""The warm itinerary against an in-memory source with snapshots and changed areas: passes
that never wait, rounds in the safe order, the retry limit, snapshots removed on failure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.pipeline.phases import COPYING_PAUSED
from reconciler.pipeline.steps import RunContext, start_record
from reconciler.pipeline.warm import (
    MAX_CONSECUTIVE_FAILURES,
    MAX_SNAPSHOTS,
    RETRY_LIMIT,
    next_wake,
    run_warm_vm,
)
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.progress.store import ProgressStore
from reconciler.targets.local import LocalTarget
from reconciler.transfer.extents import Extent

MIB = 1024 * 1024
SIZE = 4 * MIB


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def extents(self) -> Iterator[Extent]:
        yield Extent(0, self.size, False)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


class FakeSource:
    """One VM, one disk; every write is remembered under the change id it followed."""

    def __init__(self) -> None:
        self.data = bytearray(bytes(range(256)) * (SIZE // 256))
        self.epoch = 0
        self.writes: list[tuple[int, int, int]] = []  # (epoch, offset, length)
        self.taken: dict[str, tuple[bytes, int]] = {}
        self.names: dict[str, str] = {}
        self.calls: list[str] = []
        self.power = "On"

    def write(self, offset: int, blob: bytes) -> None:
        self.data[offset : offset + len(blob)] = blob
        self.writes.append((self.epoch, offset, len(blob)))

    def power_state(self, vm_id: str) -> str:
        return self.power

    def power_off(self, vm_id: str, timeout: float) -> None:
        self.power = "Off"

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str = "") -> _Reader:
        return _Reader(self.taken[snapshot_id][0] if snapshot_id else bytes(self.data))

    def create_snapshot(self, vm_id: str, name: str, description: str = "") -> str:
        self.epoch += 1
        snap = f"snap-{self.epoch}"
        self.taken[snap] = (bytes(self.data), self.epoch)
        self.names[snap] = name
        self.calls.append(f"create {snap}")
        return snap

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        self.calls.append(f"remove {snapshot_id}")
        self.taken.pop(snapshot_id, None)
        self.names.pop(snapshot_id, None)

    def snapshots(self, vm_id: str) -> dict[str, str]:
        return dict(self.names)

    def change_ids(self, vm_id: str, snapshot_id: str) -> dict[str, str]:
        return {"2000": f"cid/{self.taken[snapshot_id][1]}"}

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]:
        since, upto = int(change_id.split("/")[1]), self.taken[snapshot_id][1]
        return [Extent(o, n, False) for e, o, n in self.writes if since <= e < upto]


@pytest.fixture
def warm(tmp_path: Path):
    source = FakeSource()
    store = ProgressStore(tmp_path / "progress.db")
    target = LocalTarget(tmp_path / "cluster")
    ctx = RunContext(
        store=store,
        source=source,  # type: ignore[arg-type]
        target=target,
        plan_key="ns/p",
        migration="p-1",
        chunk_size=MIB,
        warm=True,
        precopy_interval=3600,
    )
    vm = VmPlan(
        vm_id="vm-1",
        source_name="vm-a",
        target_name="vm-a",
        namespace="vms",
        cpus=1,
        cores_per_socket=1,
        memory_mb=1024,
        firmware="bios",
        power_state="On",
        guest_os="",
        disks=(DiskPlan("2000", SIZE, "vm-a-disk-0", "", "", ""),),
        nics=(),
        labels={"plan": "p", "vmID": "vm-1"},
    )
    yield ctx, vm, source, tmp_path / "cluster" / "vms" / "disks" / "vm-a-disk-0.img"
    store.close()


def _due(ctx: RunContext, rec) -> None:
    rec.warm["nextPrecopyAt"] = "2000-01-01T00:00:00Z"
    ctx.store.put_vm(rec)


def test_rounds_copy_what_changed_in_the_safe_order_and_cutover_ends_clean(warm) -> None:
    ctx, vm, source, image = warm
    before = time.time()
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    after = time.time()
    assert rec.phase == COPYING_PAUSED and not rec.finished
    assert rec.warm["changeIds"] == {"2000": "cid/1"} and rec.warm["snapshotId"] == "snap-1"
    # an interval after the round ended (status times have whole seconds), however long it ran
    assert int(before) + 3600 <= next_wake(rec, None) <= after + 3600
    assert image.read_bytes() == bytes(source.data)

    source.write(MIB + 10, b"\xaa" * 100)
    rec = run_warm_vm(ctx, vm, rec)  # not due: nothing copied, no snapshot taken
    [r0] = rec.warm["precopies"]  # the initial full copy is round 0, as in Forklift
    assert r0["round"] == 0 and r0["full"] and r0["bytes"] == SIZE
    assert source.calls == ["create snap-1"]
    _due(ctx, rec)
    rec = run_warm_vm(ctx, vm, rec)
    assert source.calls == ["create snap-1", "remove snap-1", "create snap-2"]  # MTV-1656
    [_, r1] = rec.warm["precopies"]
    assert (r1["round"], r1["extents"], r1["chunks"]) == (1, 1, 1)
    assert rec.warm["changeIds"] == {"2000": "cid/2"}
    assert image.read_bytes() == bytes(source.data)

    source.write(3 * MIB, b"\xbb" * 4096)
    ctx.cutover = datetime.now(UTC) - timedelta(seconds=1)
    rec = run_warm_vm(ctx, vm, rec)
    assert rec.result == "Succeeded", rec.error
    assert source.power == "Off" and source.taken == {}
    assert rec.warm["precopies"][-1]["final"] is True and rec.warm["cutoverBytes"] >= 4096
    assert image.read_bytes() == bytes(source.data)


def test_more_rounds_than_the_limit_fail_and_leave_no_snapshot(warm) -> None:
    ctx, vm, source, _ = warm
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    rec.warm["snapshotsTaken"] = MAX_SNAPSHOTS
    _due(ctx, rec)
    rec = run_warm_vm(ctx, vm, rec)
    assert rec.result == "Failed"
    assert RETRY_LIMIT in rec.error["reasons"][0]
    assert source.taken == {}


def test_a_round_stopped_midway_resumes_under_its_number_from_the_stored_change_id(warm) -> None:
    ctx, vm, source, image = warm
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    source.write(2 * MIB, b"\xcc" * 5000)
    opened = source.open_disk

    def stop_on_first_read(vm_id: str, disk_key: str, snapshot_id: str = "") -> _Reader:
        ctx.halt.set()  # as a shutdown would, while the round's reader is open
        return opened(vm_id, disk_key, snapshot_id)

    source.open_disk = stop_on_first_read  # type: ignore[method-assign]
    _due(ctx, rec)
    rec = run_warm_vm(ctx, vm, rec)
    assert not rec.finished and rec.warm["current"]["round"] == 1
    assert rec.warm["changeIds"] == {"2000": "cid/1"}  # not moved on: the round is unfinished
    source.open_disk = opened  # type: ignore[method-assign]
    ctx.halt.clear()
    rec = run_warm_vm(ctx, vm, ctx.store.get_vm("ns/p", "vm-1"))  # as a restarted reconciler
    assert rec.phase == COPYING_PAUSED and "current" not in rec.warm
    assert [r["round"] for r in rec.warm["precopies"]] == [0, 1]
    assert rec.warm["changeIds"] == {"2000": "cid/2"}
    assert source.calls == ["create snap-1", "remove snap-1", "create snap-2"]  # no new snapshot
    assert image.read_bytes() == bytes(source.data)


def test_failed_rounds_are_retried_and_fail_the_vm_only_when_they_keep_failing(warm) -> None:
    ctx, vm, source, image = warm
    ctx.precopy_interval = 3600
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    source.write(MIB, b"\x01" * 512)
    opened = source.open_disk

    def broken(vm_id: str, disk_key: str, snapshot_id: str = "") -> _Reader:
        raise OSError("datastore went away")

    source.open_disk = broken  # type: ignore[method-assign]
    for failures in range(1, MAX_CONSECUTIVE_FAILURES):
        _due(ctx, rec)
        rec = run_warm_vm(ctx, vm, rec)
        assert rec.phase == COPYING_PAUSED and not rec.finished
        assert rec.warm["consecutiveFailures"] == failures
        assert "datastore went away" in rec.warm["lastFailure"]["message"]
        # tried again within RETRY_SECONDS, not an hour later
        assert next_wake(rec, None) < time.time() + 61
    source.open_disk = opened  # type: ignore[method-assign]
    _due(ctx, rec)
    rec = run_warm_vm(ctx, vm, rec)  # the same round, its snapshot kept, now copies
    assert rec.warm["consecutiveFailures"] == 0
    assert rec.warm["failures"] == MAX_CONSECUTIVE_FAILURES - 1
    assert [r["round"] for r in rec.warm["precopies"]] == [0, 1]
    assert image.read_bytes() == bytes(source.data)

    source.open_disk = broken  # type: ignore[method-assign]
    for _ in range(MAX_CONSECUTIVE_FAILURES):
        _due(ctx, rec)
        rec = run_warm_vm(ctx, vm, rec)
    assert rec.result == "Failed"
    assert RETRY_LIMIT in rec.error["reasons"][0] and "in a row" in rec.error["reasons"][0]
    assert source.taken == {}  # every snapshot removed


class _Killed(BaseException):
    """The process dying right after the source took a snapshot."""


def test_a_snapshot_taken_by_a_killed_pass_but_never_recorded_is_removed(warm) -> None:
    ctx, vm, source, image = warm
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    take = source.create_snapshot

    def take_then_die(vm_id: str, name: str, description: str = "") -> str:
        take(vm_id, name, description)
        raise _Killed

    source.create_snapshot = take_then_die  # type: ignore[method-assign]
    _due(ctx, rec)
    with pytest.raises(_Killed):
        run_warm_vm(ctx, vm, rec)
    source.create_snapshot = take  # type: ignore[method-assign]
    assert source.names["snap-2"] == "mtv-gitops-p-1-1"  # taken, its id never stored
    # snapshots this record never named are left alone, however they are called: the user's,
    # and one another reconciler holds
    take("vm-1", "before patching", "the user's own")
    take("vm-1", "mtv-gitops-q-1-1", "another reconciler's round")

    rec = ctx.store.get_vm("ns/p", "vm-1")  # what a restarted process reads
    rec = run_warm_vm(ctx, vm, rec)
    assert "remove snap-2" in source.calls  # the leaked one, known by the name stored first
    assert source.names[rec.warm["snapshotId"]] == "mtv-gitops-p-1-1"  # the new round's
    assert sorted(source.names.values()) == [
        "before patching",
        "mtv-gitops-p-1-1",
        "mtv-gitops-q-1-1",
    ]
    ctx.cutover = datetime.now(UTC) - timedelta(seconds=1)
    rec = run_warm_vm(ctx, vm, rec)
    assert rec.result == "Succeeded", rec.error
    assert sorted(source.names.values()) == ["before patching", "mtv-gitops-q-1-1"]
    assert image.read_bytes() == bytes(source.data)


def test_removing_spec_cutover_after_the_cutover_started_is_too_late(warm) -> None:
    """The pass stops right after the source was powered off; meanwhile the user removes
    spec.cutover.  The cutover goes on (the source is off) and the VM's status says why."""
    ctx, vm, source, image = warm
    rec = run_warm_vm(ctx, vm, start_record(ctx, vm, None))
    assert rec.phase == COPYING_PAUSED
    off = source.power_off

    def power_off_then_stop(vm_id: str, timeout: float) -> None:
        off(vm_id, timeout)
        ctx.halt.set()  # the reconciler is stopped right after the power-off

    source.power_off = power_off_then_stop  # type: ignore[method-assign]
    ctx.cutover = datetime.now(UTC) - timedelta(seconds=1)
    rec = run_warm_vm(ctx, vm, rec)
    assert not rec.finished and source.power == "Off"
    assert rec.warm["cutover"]["started"] is True

    ctx.halt.clear()
    ctx.cutover = None  # spec.cutover removed from the Migration
    rec = run_warm_vm(ctx, vm, rec)
    assert rec.result == "Succeeded", rec.error
    assert rec.warm["cutoverMessage"].startswith(
        "spec.cutover was removed after the cutover started"
    )
    assert "too late to cancel, the cutover goes on" in rec.warm["cutoverMessage"]
    assert image.read_bytes() == bytes(source.data) and source.taken == {}
