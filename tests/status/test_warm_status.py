"""``warm_status``: a warm VM's record in Forklift's ``plan.Warm`` shape, at each stage."""

from __future__ import annotations

import copy
from typing import Any

from reconciler.progress.store import VmProgress
from reconciler.status.projection import dump, vm_status, warm_status
from tests.support.warm_status import (
    BRANCH,
    INSTRUCTION,
    PROPOSED,
    after_a_failure,
    completed,
    paused_after_round_0,
    round_in_flight,
)


def test_paused_after_round_0_shows_the_proposal_to_merge() -> None:
    assert warm_status(paused_after_round_0()) == {
        "successes": 0,
        "failures": 0,
        "consecutiveFailures": 0,
        "nextPrecopyAt": "2025-03-01T11:00:05Z",
        "precopies": [],
        "cutover": {"branch": BRANCH, "instruction": INSTRUCTION, "message": PROPOSED},
    }


def test_a_round_in_flight_shows_beside_the_rounds_done() -> None:
    out = warm_status(round_in_flight())
    assert out["successes"] == 1
    assert out["precopies"] == [
        {
            "round": 1,
            "start": "2025-03-01T11:00:06Z",
            "end": "2025-03-01T11:00:09Z",
            "bytes": 69632,
            "extents": 2,
            "chunks": 2,
            "snapshot": "snapshot-1",
        }
    ]
    assert out["roundInFlight"] == {
        "round": 2,
        "start": "2025-03-01T12:00:06Z",
        "snapshot": "snapshot-2",
    }
    assert out["nextPrecopyAt"] == "2025-03-01T12:00:09Z"


def test_a_failed_round_counts_and_shows_its_message() -> None:
    out = warm_status(after_a_failure())
    assert (out["successes"], out["failures"], out["consecutiveFailures"]) == (1, 1, 1)
    assert out["lastFailure"] == {
        "time": "2025-03-01T12:00:07Z",
        "message": "snapshot [busy] on host",
    }
    assert "roundInFlight" not in out and out["nextPrecopyAt"] == "2025-03-01T13:00:07Z"


def test_completed_shows_the_downtime_and_the_bytes_copied_during_it() -> None:
    out = warm_status(completed(), finished=True)
    assert (out["successes"], out["failures"], out["consecutiveFailures"]) == (3, 1, 0)
    assert out["precopies"][-1]["final"] is True and "final" not in out["precopies"][0]
    assert out["precopies"][-1]["bytes"] == 196608
    assert out["cutover"] == {
        "branch": BRANCH,
        "instruction": INSTRUCTION,
        "scheduledAt": "2025-03-01T13:10:00Z",
        "message": "cutover in progress (scheduled at 2025-03-01T13:10:00Z)",
        "started": True,
        "powerOffAt": "2025-03-01T13:10:01Z",
        "downtimeSeconds": 1.2,
        "bytes": 196608,
    }
    assert "nextPrecopyAt" not in out  # no more precopy rounds


def test_no_next_precopy_once_cutover_started_or_the_vm_finished() -> None:
    w = after_a_failure()
    w["cutover"]["started"] = True
    assert "nextPrecopyAt" not in warm_status(w)
    w = after_a_failure()
    w["current"] = {"round": 3, "snapshot": "snapshot-3", "start": "x", "final": True}
    assert "nextPrecopyAt" not in warm_status(w)
    assert warm_status(w)["roundInFlight"]["final"] is True
    assert "nextPrecopyAt" not in warm_status(after_a_failure(), finished=True)


def _keys(doc: Any) -> set[str]:
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def test_internal_plumbing_stays_out() -> None:
    for record in (paused_after_round_0(), round_in_flight(), after_a_failure(), completed()):
        out = warm_status(record)
        plumbing = {"changeIds", "powerOffEpoch", "snapshotId", "proposed", "scheduled"}
        assert not _keys(out) & (plumbing | {"provider", "powerState", "current"})
        assert "52 de" not in dump(out)  # no change id


def test_the_record_is_not_changed_and_the_status_is_stable() -> None:
    for record in (paused_after_round_0(), round_in_flight(), after_a_failure(), completed()):
        before = copy.deepcopy(record)
        first = dump(warm_status(record))
        assert record == before
        assert dump(warm_status(record)) == first
        # the status holds copies: editing it leaves the record alone
        warm_status(record)["precopies"].append({})
        assert record == before


def test_a_proposal_that_could_not_be_pushed_shows_why() -> None:
    w = paused_after_round_0()
    del w["cutoverBranch"]
    w["cutoverInstruction"] = "cutover proposal not pushed yet: remote rejected"
    assert warm_status(w)["cutover"] == {
        "instruction": "cutover proposal not pushed yet: remote rejected",
        "message": PROPOSED,
    }


def test_vm_status_projects_the_warm_record() -> None:
    rec = VmProgress(plan="vs-vms/vs-plan", vm_id="vm-1", vm_name="web", phase="Completed")
    rec.result = "Succeeded"
    rec.warm = completed()
    out = vm_status(rec)
    assert out["warm"] == warm_status(completed(), finished=True)
    cold = VmProgress(plan="vs-vms/vs-plan", vm_id="vm-2", vm_name="db")
    assert "warm" not in vm_status(cold)
