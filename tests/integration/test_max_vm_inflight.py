"""controller_max_vm_inflight: at most N VMs of a plan run at once; the others wait, Pending.

OVA VMs have no source host, so the limit is a plain count per plan (MTV's rule for every
provider but vSphere).  Overlaps are read from the VMs' recorded started/completed times,
never from wall-clock speed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time

import git
import pytest
from ruamel.yaml import YAML

from tests.support.workspace import chunks_done, limit_and_throttle, small_vm, start_reconcile

pytestmark = pytest.mark.integration
MIGRATION_STATUS = "status/migration/openshift-mtv/demo-plan-1.yaml"
PLAN_STATUS = "status/plan/openshift-mtv/demo-plan.yaml"


def _most_at_once(ws) -> int:
    """The most VMs whose recorded [started, completed) spans overlap.

    Times have whole seconds, so the VMs that end in a second are taken out before those that
    start in it: this never counts more VMs than truly ran at once (one that ended in the
    second another started is not counted with it), and VMs that ran together for more than
    a second are all counted."""
    with sqlite3.connect(ws.state / "progress.db") as con:
        spans = con.execute("SELECT started, completed FROM vms").fetchall()
    assert spans and all(s and c for s, c in spans), spans
    events = sorted([(c, 0) for _, c in spans] + [(s, 1) for s, _ in spans])
    now = most = 0
    for _, starts in events:
        now += 1 if starts else -1
        most = max(most, now)
    return most


def _history(ws, path: str) -> list[dict]:
    """Every committed version of a status file, oldest first."""
    repo = git.Repo(ws.remote)
    shas = repo.git.log("--reverse", "--format=%H", "main", "--", path).split()
    return [YAML(typ="safe").load(repo.git.show(f"{sha}:{path}")) for sha in shas]


@pytest.mark.parametrize("limit", [1, 2])
def test_at_most_the_limit_of_vms_run_at_once(workspace_factory, limit: int) -> None:
    ws = workspace_factory([small_vm(f"vm-{i}", 20 + i, data_mib=12) for i in range(3)])
    limit_and_throttle(ws, limit, 4)  # over 2 s of copying per VM
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert _most_at_once(ws) == limit  # never more, and the limit is used, not just one

    # while VMs ran, the others were committed as Pending with the reason they waited
    why = (
        f"waiting: {limit} VM{'s' if limit > 1 else ''} in flight in the plan "
        f"(controller_max_vm_inflight: {limit})"
    )
    seen_waiting = False
    for doc in _history(ws, MIGRATION_STATUS):
        vms = doc["status"].get("vms", [])
        active = [v for v in vms if v["phase"] not in ("Pending", "Completed")]
        queued = [v for v in vms if v["phase"] == "Pending"]
        assert len(active) <= limit
        if active and queued:
            seen_waiting = True
            for v in queued:
                assert "started" not in v
                assert v["conditions"] == [
                    {"type": "Waiting", "status": "True", "category": "Advisory", "message": why}
                ]
    assert seen_waiting

    plan_waits = [
        c
        for doc in _history(ws, PLAN_STATUS)
        for c in doc["status"]["conditions"]
        if c["type"] == "VMsWaiting"
    ]
    assert plan_waits and all(
        f"at most {limit} VM(s) run at once (controller_max_vm_inflight)" in c["message"]
        for c in plan_waits
    )
    final = ws.status("plan", "demo-plan")["status"]
    assert {v["phase"] for v in final["migration"]["vms"]} == {"Completed"}
    assert "VMsWaiting" not in {c["type"] for c in final["conditions"]}
    mig = ws.status("migration", "demo-plan-1")["status"]
    assert [v["name"] for v in mig["vms"]] == ["vm-0", "vm-1", "vm-2"]  # the plan's order
    assert [c["type"] for c in mig["conditions"]] == ["Succeeded"]


def test_a_vm_canceled_while_it_waits_never_starts(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("runs", 30, data_mib=48, capacity_mib=128), small_vm("queued", 31)]
    )
    limit_and_throttle(ws, 1, 3)  # ~16 s of copying for "runs": the cancel lands inside it
    proc = start_reconcile(ws)
    try:
        deadline = time.monotonic() + 120  # a safety net, not a measure of speed
        while chunks_done(ws) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        mig = (ws.clone / "migrations" / "demo-plan-1.yaml").read_text()
        ws.user_commit(
            {"migrations/demo-plan-1.yaml": mig + "  cancel:\n    - name: queued\n"},
            "cancel the VM that waits",
        )
        out, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, out
    vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
    assert vms["runs"]["phase"] == "Completed"
    assert vms["queued"]["phase"] == "Canceled", out[-2500:]
    assert "started" not in vms["queued"]  # it never took a slot
    disks = ws.cluster / "demo-vms" / "disks"
    assert sorted(p.name for p in disks.iterdir()) == ["runs-disk-0.img"]
    assert ws.status("migration", "demo-plan-1")["status"]["conditions"][0]["type"] == "Canceled"
