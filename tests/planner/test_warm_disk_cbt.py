"""A warm plan and a disk whose changed block tracking is off: Not Ready, naming the disk."""

from __future__ import annotations

from pathlib import Path

from reconciler.inventory.model import Disk
from reconciler.manifests.references import check_references
from reconciler.planner.planner import Observed, PlanProgress, decide
from tests.support.planner import CAPS, PLAN, SRC, GiB, conds, inventory, vm
from tests.support.repo import basic_repo, load


def _decide(root: Path, inv, tracked: dict) -> object:
    desired = load(root)
    observed = Observed(
        {SRC: inv}, {"vms": set()}, disk_change_tracking={SRC: tracked}, capabilities=CAPS
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    return d


def test_a_disk_without_changed_block_tracking_holds_a_warm_plan(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n", plan_extra="  warm: true\n")
    disks = (Disk("2000", 10 * GiB, "datastore-1"), Disk("2001", GiB, "datastore-1"))
    inv = inventory(
        vm("vm-1", "db", change_tracking=True, disks=disks),
        vm("vm-2", "web", change_tracking=True, disks=disks),
    )
    tracked = {"vm-1": {"2000": True, "2001": False}, "vm-2": {"2000": True, "2001": True}}
    d = _decide(tmp_path, inv, tracked)
    cat, msg = conds(d)["VMChangeTrackingDisabled"]
    assert cat == "Critical" and msg.endswith(": db (disk 2001)") and not d.ready
    # not read (another source, or the read failed): the initial snapshot checks it
    assert "VMChangeTrackingDisabled" not in conds(_decide(tmp_path, inv, {}))
