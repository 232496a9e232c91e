"""The cold pipeline's level-triggered repairs, on the local target with a real OVA source."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugins.ova.factory import build_ova
from reconciler.pipeline.cold import ensure_disks_allocated, ensure_disks_copied, ensure_vm_created
from reconciler.pipeline.steps import RunContext, disk_id, labelled
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore, VmProgress
from reconciler.targets.base import TargetError
from reconciler.targets.kubevirt.manifests import disk_claims, vm_manifest
from reconciler.targets.local import LocalTarget
from reconciler.transfer.digest import disk_digest_of_file
from tests.support.workspace import small_vm

MIB = 1024 * 1024


@pytest.fixture
def run(tmp_path: Path):
    build_ova(tmp_path / "vm-a.ova", **small_vm("vm-a", 3, data_mib=4, capacity_mib=32))
    conn = connect("ova", str(tmp_path), {}, {})
    (inv,) = conn.inventory().vms
    store = ProgressStore(tmp_path / "progress.db")
    target = LocalTarget(tmp_path / "cluster")
    ctx = RunContext(store=store, source=conn, target=target, plan_key="ns/p", migration="p-1")
    vm = VmPlan(
        vm_id=inv.id,
        source_name="vm-a",
        target_name="vm-a",
        namespace="vms",
        cpus=1,
        cores_per_socket=1,
        memory_mb=1024,
        firmware="bios",
        power_state="Off",
        guest_os="",
        disks=(DiskPlan(inv.disks[0].key, 32 * MIB, "vm-a-disk-0", "", "", ""),),
        nics=(),
        labels={"plan": "p", "vmID": "vm-1"},
    )
    yield ctx, labelled(ctx, vm), target
    conn.close()
    store.close()


def test_everything_made_for_a_run_carries_its_migration(run) -> None:
    ctx, vm, _ = run
    (claim,) = disk_claims(vm)
    assert claim.manifest["metadata"]["labels"]["migration"] == "p-1"
    assert vm_manifest(vm)["metadata"]["labels"] == {
        "plan": "p",
        "vmID": "vm-1",
        "migration": "p-1",
    }


def test_a_disk_deleted_by_hand_is_made_again_and_copied_again(run, tmp_path: Path) -> None:
    ctx, vm, target = run
    rec = VmProgress("ns/p", vm.vm_id)
    ensure_disks_allocated(ctx, vm, rec, {})
    ensure_disks_copied(ctx, vm, rec, {})
    image = tmp_path / "cluster" / "vms" / "disks" / "vm-a-disk-0.img"
    digest = disk_digest_of_file(image)
    (claim,) = disk_claims(vm)
    assert ctx.store.get_disk(disk_id(ctx, vm, claim)).completed

    image.unlink()  # by hand, while the VM's run was stopped before CreateVM
    step: dict = {}
    ensure_disks_copied(ctx, vm, rec, step)  # the next run of the step
    (task,) = step["tasks"]
    assert task["annotations"]["recreated"] == (
        "PVC vms/vm-a-disk-0 was missing: re-created, copy restarted"
    )
    assert disk_digest_of_file(image) == digest  # copied again, not trusted from the store


def test_a_disk_gone_after_its_copy_fails_the_vm_before_it_is_created(run, tmp_path) -> None:
    ctx, vm, target = run
    rec = VmProgress("ns/p", vm.vm_id)
    ensure_disks_allocated(ctx, vm, rec, {})
    ensure_disks_copied(ctx, vm, rec, {})
    (claim,) = disk_claims(vm)
    target.delete_disk(claim)
    with pytest.raises(TargetError, match=r"PVC vms/vm-a-disk-0 is gone after its disk was"):
        ensure_vm_created(ctx, vm, rec, {})
    assert ctx.store.get_disk(disk_id(ctx, vm, claim)) is None  # the next Migration recopies
    assert target.vm_names("vms") == set()
