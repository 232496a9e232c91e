"""Which plans convert their guests: the source's capability, and spec.skipGuestConversion."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifests.references import check_references
from reconciler.planner.planner import Observed, PlanProgress, decide
from reconciler.sources import Capabilities
from tests.support.planner import CAPS, PLAN, SRC, inventory, vm
from tests.support.repo import API, basic_repo, load, write


def decide_one(root: Path, caps=CAPS):
    write(
        root,
        "migrations/m1.yaml",
        f"apiVersion: {API}\nkind: Migration\nmetadata: {{name: m1}}\n"
        "spec:\n  plan: {name: plan}\n",
    )
    desired = load(root)
    assert desired.errors == []
    observed = Observed({SRC: inventory(vm("vm-1", "a"))}, {"vms": set()}, capabilities=caps)
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    return d


def test_a_source_whose_guests_need_conversion_converts(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    assert decide_one(tmp_path).skip_conversion == ""


def test_skip_guest_conversion_on_the_plan_says_so(tmp_path: Path) -> None:
    basic_repo(tmp_path, plan_extra="  skipGuestConversion: true\n")
    d = decide_one(tmp_path)
    assert d.ready
    assert "spec.skipGuestConversion: true" in d.skip_conversion


def test_a_source_whose_guests_run_on_kvm_already_says_not_needed(tmp_path: Path) -> None:
    """Not "skipped" (work left undone): there is nothing to do, and the step says so."""
    basic_repo(tmp_path)
    d = decide_one(tmp_path, caps={"vsphere": Capabilities(guest_conversion=False)})
    assert d.skip_conversion.startswith("not needed: the guest already runs on KVM")
