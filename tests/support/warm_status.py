"""Warm records at known moments (paused after round 0, a round in flight, after a failure,
completed) that the status projection and its rendering are tested with."""

from __future__ import annotations

from typing import Any

BRANCH = "mtv-gitops/cutover/vs-vms/warm-1"


INSTRUCTION = f"merge branch {BRANCH} to cut over at 2025-03-01T10:00:05Z"


PROPOSED = "precopy has run: a cutover at 2025-03-01T10:00:05Z is proposed for review"


def round_record(k: int, start: str, end: str, nbytes: int, extents: int, **extra: Any) -> dict:
    return {
        "round": k,
        "start": start,
        "end": end,
        "bytes": nbytes,
        "extents": extents,
        "chunks": extents,
        "snapshot": f"snapshot-{k}",
        **extra,
    }


def paused_after_round_0() -> dict[str, Any]:
    """Pass 1 left it: initial snapshot, full copy, the cutover proposed, waiting."""
    return {
        "precopies": [],
        "powerState": "On",
        "snapshotId": "snapshot-0",
        "changeIds": {"2000": "52 de/1"},
        "nextPrecopyAt": "2025-03-01T11:00:05Z",
        "cutover": {"started": False, "proposed": "2025-03-01T10:00:05+00:00"},
        "cutoverMessage": PROPOSED,
        "cutoverBranch": BRANCH,
        "cutoverInstruction": INSTRUCTION,
        "provider": "vs-vms/vcenter",
    }


def round_in_flight() -> dict[str, Any]:
    w = paused_after_round_0()
    w["precopies"] = [
        round_record(1, "2025-03-01T11:00:06Z", "2025-03-01T11:00:09Z", 69632, 2),
    ]
    w["snapshotId"] = "snapshot-2"
    w["current"] = {"round": 2, "snapshot": "snapshot-2", "start": "2025-03-01T12:00:06Z"}
    w["nextPrecopyAt"] = "2025-03-01T12:00:09Z"
    return w


def after_a_failure() -> dict[str, Any]:
    w = round_in_flight()
    del w["current"]
    w["failures"] = 1
    w["consecutiveFailures"] = 1
    w["lastFailure"] = {"time": "2025-03-01T12:00:07Z", "message": "snapshot [busy] on host"}
    w["nextPrecopyAt"] = "2025-03-01T13:00:07Z"
    return w


def completed() -> dict[str, Any]:
    """Cut over at the merged time: final delta copied, VM created, downtime recorded."""
    w = after_a_failure()
    w["consecutiveFailures"] = 0
    w["precopies"].append(round_record(2, "2025-03-01T13:00:07Z", "2025-03-01T13:00:09Z", 8192, 1))
    w["precopies"].append(
        round_record(3, "2025-03-01T13:10:02Z", "2025-03-01T13:10:03Z", 196608, 3, final=True)
    )
    w["snapshotId"] = ""
    w["changeIds"] = {"2000": "52 de/4"}
    w["cutover"] = {
        "started": True,
        "proposed": "2025-03-01T10:00:05+00:00",
        "scheduled": "2025-03-01T13:10:00+00:00",
    }
    w["cutoverMessage"] = "cutover in progress (scheduled at 2025-03-01T13:10:00Z)"
    w["cutoverAt"] = "2025-03-01T13:10:00Z"
    w["powerOffAt"] = "2025-03-01T13:10:01Z"
    w["powerOffEpoch"] = 1740834601.25
    w["cutoverBytes"] = 196608
    w["downtimeSeconds"] = 1.2
    return w
