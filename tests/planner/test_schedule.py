"""schedule(): how many VMs start under controller_max_vm_inflight, per host or per plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.planner.schedule import (
    Job,
    Schedule,
    controller_settings,
    schedule,
)
from reconciler.plugin_manager import capabilities
from tests.support.repo import API, load, write


def jobs(*specs: str) -> list[Job]:
    """``"vm-1@host-21"`` -> Job("vm-1", "host-21"); no ``@`` means no host."""
    out = []
    for spec in specs:
        vm_id, _, host = spec.partition("@")
        out.append(Job(vm_id, host))
    return out


def test_plain_count_starts_up_to_the_limit_in_queue_order() -> None:
    got = schedule(jobs("a", "b", "c", "d"), [], limit=2, per_host=False)
    assert got.start == ("a", "b")
    assert got.waiting == {
        "c": "waiting: 2 VMs in flight in the plan (controller_max_vm_inflight: 2)",
        "d": "waiting: 2 VMs in flight in the plan (controller_max_vm_inflight: 2)",
    }


def test_vms_in_flight_take_their_slots() -> None:
    got = schedule(jobs("c", "d"), jobs("a"), limit=2, per_host=False)
    assert got.start == ("c",)
    assert set(got.waiting) == {"d"}
    full = schedule(jobs("c"), jobs("a", "b"), limit=2, per_host=False)
    assert full == Schedule((), {"c": full.waiting["c"]})


def test_a_limit_of_one_runs_vms_one_after_another() -> None:
    got = schedule(jobs("a", "b"), [], limit=1, per_host=False)
    assert got.start == ("a",)
    assert got.waiting["b"] == "waiting: 1 VM in flight in the plan (controller_max_vm_inflight: 1)"


def test_per_host_counts_each_esxi_host_on_its_own() -> None:
    queued = jobs("a@host-21", "b@host-21", "c@host-21", "d@host-33", "e@host-33")
    got = schedule(queued, [], limit=2, per_host=True)
    assert got.start == ("a", "b", "d", "e")
    assert got.waiting == {
        "c": "waiting: 2 VMs in flight on host host-21 (controller_max_vm_inflight: 2)"
    }


def test_per_host_counts_what_already_runs_on_that_host_only() -> None:
    got = schedule(jobs("b@host-21", "c@host-33"), jobs("a@host-21"), limit=1, per_host=True)
    assert got.start == ("c",)
    assert got.waiting == {
        "b": "waiting: 1 VM in flight on host host-21 (controller_max_vm_inflight: 1)"
    }


def test_hosts_are_ignored_when_the_provider_counts_per_plan() -> None:
    got = schedule(jobs("a@host-21", "b@host-33", "c@host-44"), [], limit=2, per_host=False)
    assert got.start == ("a", "b")
    assert set(got.waiting) == {"c"}


def test_vms_without_a_host_share_one_bucket_when_counting_per_host() -> None:
    got = schedule(jobs("a", "b", "c@host-21"), [], limit=1, per_host=True)
    assert got.start == ("a", "c")
    assert got.waiting["b"].startswith("waiting: 1 VM in flight on an unknown host")


def test_a_queued_vm_already_in_flight_is_not_started_twice() -> None:
    got = schedule(jobs("a", "b"), jobs("a"), limit=2, per_host=False)
    assert got.start == ("b",)
    assert got.waiting == {}


def test_a_waiting_vm_does_not_hold_back_one_on_a_free_host() -> None:
    got = schedule(jobs("a@h1", "b@h1", "c@h2"), jobs("x@h1"), limit=1, per_host=True)
    assert got.start == ("c",)
    assert set(got.waiting) == {"a", "b"}


def test_nothing_queued_starts_nothing() -> None:
    assert schedule([], jobs("a"), limit=1, per_host=False) == Schedule()


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="controller_max_vm_inflight must be at least 1"):
        schedule(jobs("a"), [], limit=0, per_host=False)


def test_only_vsphere_counts_per_host() -> None:
    """The bundled plugins declare it; the planner reads it from the mapping it is given."""
    caps = capabilities()
    assert caps["vsphere"].inflight_per_host
    assert not any(caps[t].inflight_per_host for t in ("ova", "ovirt", "openstack"))
    assert "openshift" not in caps  # the destination is the core's, not a source plugin's


def _controller(root: Path, ns: str, name: str, limit: int) -> None:
    write(
        root,
        f"controller/{ns}-{name}.yaml",
        f"apiVersion: {API}\nkind: ForkliftController\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec:\n  controller_max_vm_inflight: {limit}\n",
    )


def test_controller_settings_default_to_twenty(tmp_path: Path) -> None:
    assert controller_settings(load(tmp_path), "openshift-mtv").controller_max_vm_inflight == 20


def test_the_controller_in_the_plans_namespace_wins(tmp_path: Path) -> None:
    _controller(tmp_path, "aaa", "forklift-controller", 3)
    _controller(tmp_path, "openshift-mtv", "forklift-controller", 2)
    desired = load(tmp_path)
    assert controller_settings(desired, "openshift-mtv").controller_max_vm_inflight == 2
    assert controller_settings(desired, "elsewhere").controller_max_vm_inflight == 3
