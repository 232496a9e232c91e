"""A Plan's lifecycle through git on the local target: archive (read-only, leftovers removed,
migrated VMs kept), delete (the same cleanup; refused while its Migration runs), restart."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.workspace import CLI, migration_yaml, plan_yaml, small_vm

pytestmark = pytest.mark.integration
NS = "demo-vms"


def hook_yaml(name: str, playbook: str) -> str:
    encoded = base64.b64encode(playbook.encode()).decode()
    return (
        "apiVersion: forklift.konveyor.io/v1beta1\nkind: Hook\n"
        f"metadata: {{name: {name}, namespace: openshift-mtv}}\n"
        f"spec: {{playbook: {encoded}}}\n"
    )


def with_prehook(plan: str, vm: str, hook: str) -> str:
    return plan.replace(
        f"    - name: {vm}\n",
        f"    - name: {vm}\n      hooks:\n"
        f"        - hook: {{name: {hook}}}\n          step: PreHook\n",
    )


FAIL = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - fail: {msg: not today}\n"


def leave_partial_disk(cluster: Path, vm: str, vm_id: str) -> Path:
    """What a VM whose copy failed half-way leaves: its PVC manifest and a partial image."""
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"{vm}-disk-0",
            "namespace": NS,
            "labels": {"plan": "demo-plan", "vmID": vm_id, "migration": "demo-plan-1"},
        },
    }
    (cluster / NS / "pvcs").mkdir(parents=True, exist_ok=True)
    (cluster / NS / "disks").mkdir(parents=True, exist_ok=True)
    with (cluster / NS / "pvcs" / f"{vm}-disk-0.yaml").open("w") as f:
        YAML(typ="safe").dump(pvc, f)
    image = cluster / NS / "disks" / f"{vm}-disk-0.img"
    image.write_bytes(b"\1" * 4096)
    return image


def _vm_ids(ws) -> dict[str, str]:
    plan = ws.status("plan", "demo-plan")["status"]
    return {v["name"]: v["id"] for v in plan["migration"]["vms"]}


def _first_run(ws) -> dict[str, str]:
    """vm-a migrated, vm-b failed in its PreHook, a partial disk of vm-b on the target."""
    ws.user_commit(
        {
            "plans/demo-plan.yaml": with_prehook(
                plan_yaml("demo-plan", ["vm-a", "vm-b"]), "vm-b", "no"
            ),
            "hooks/no.yaml": hook_yaml("no", FAIL),
        },
        "vm-b gets a PreHook that fails",
    )
    ws.reconcile("--once")
    ids = _vm_ids(ws)
    vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
    assert vms["vm-a"]["phase"] == "Completed"
    assert vms["vm-b"]["phase"] == "Failed"
    assert vms["vm-b"]["error"]["phase"] == "PreHook"
    return ids


def test_an_archived_plan_refuses_migrations_and_keeps_only_migrated_vms(workspace_factory):
    ws = workspace_factory([small_vm("vm-a", 1), small_vm("vm-b", 2)])
    ids = _first_run(ws)
    partial = leave_partial_disk(ws.cluster, "vm-b", ids["vm-b"])
    plan = (ws.clone / "plans" / "demo-plan.yaml").read_text()
    ws.user_commit(
        {
            "plans/demo-plan.yaml": plan.replace("spec:\n", "spec:\n  archived: true\n", 1),
            "migrations/demo-plan-2.yaml": migration_yaml("demo-plan-2", "demo-plan"),
        },
        "archive the plan, and try to run it again",
    )
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = ws.status("plan", "demo-plan")["status"]
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Archived"]["category"] == "Advisory"
    assert (
        "Migration demo-plan-2 refused: Plan demo-plan is archived"
        in (conds["MigrationRefused"]["message"])
    )
    mig = ws.status("migration", "demo-plan-2")["status"]
    assert [c["type"] for c in mig["conditions"]] == ["Refused"]
    assert "mtv-gitops plan duplicate" in mig["conditions"][0]["message"]
    # history stays; the migrated VM and its disk stay; the failed VM's leftovers are gone
    assert status["migration"]["history"][0]["migration"]["name"] == "demo-plan-1"
    assert (ws.cluster / NS / "virtualmachines" / "vm-a.yaml").exists()
    assert (ws.cluster / NS / "disks" / "vm-a-disk-0.img").exists()
    assert not partial.exists()
    assert not (ws.cluster / NS / "pvcs" / "vm-b-disk-0.yaml").exists()


def test_a_deleted_plan_leaves_its_migrated_vms_and_nothing_else(workspace_factory):
    ws = workspace_factory([small_vm("vm-a", 1), small_vm("vm-b", 2)])
    ids = _first_run(ws)
    partial = leave_partial_disk(ws.cluster, "vm-b", ids["vm-b"])
    ws.user_commit(
        {"plans/demo-plan.yaml": None, "migrations/demo-plan-1.yaml": None}, "drop the plan"
    )
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not partial.exists()
    assert (ws.cluster / NS / "virtualmachines" / "vm-a.yaml").exists()
    assert (ws.cluster / NS / "disks" / "vm-a-disk-0.img").exists()
    repo = YAML(typ="safe").load(ws.remote_file("status/repo.yaml"))
    assert "deletedPlans" not in repo
    assert ws.remote_file("status/plan/openshift-mtv/demo-plan.yaml") is None


def test_deleting_a_plan_while_its_migration_runs_is_refused_until_it_is_canceled(
    workspace_factory, tmp_path: Path
):
    ws = workspace_factory([small_vm("vm-a", 1)])
    started, release = tmp_path / "hook-started", tmp_path / "hook-release"
    hold = (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - file: {{path: {started}, state: touch}}\n"
        f"    - wait_for: {{path: {release}, timeout: 600}}\n"
    )
    ws.user_commit(
        {
            "plans/demo-plan.yaml": with_prehook(plan_yaml("demo-plan", ["vm-a"]), "vm-a", "hold"),
            "hooks/hold.yaml": hook_yaml("hold", hold),
        },
        "vm-a gets a PreHook that waits",
    )
    args = ["reconcile", str(ws.clone), "--state-dir", str(ws.state), "--cluster", str(ws.cluster)]
    proc = subprocess.Popen(
        [*CLI, *args, "--once"],
        cwd=ws.root,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while not started.exists():  # the migration runs: its hook holds it
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # a reconciler dies in the middle of the run
        proc.wait(60)
        ws.user_commit({"plans/demo-plan.yaml": None}, "drop the plan while it runs")
        assert ws.reconcile("--once").returncode == 1  # a problem to read
        repo = YAML(typ="safe").load(ws.remote_file("status/repo.yaml"))
        (entry,) = repo["deletedPlans"]
        assert entry["plan"] == "openshift-mtv/demo-plan"
        assert "deleted while its Migration demo-plan-1 runs" in entry["message"]
        ws.user_commit({"migrations/demo-plan-1.yaml": None}, "cancel the run")
        assert ws.reconcile("--once").returncode == 0
        repo = YAML(typ="safe").load(ws.remote_file("status/repo.yaml"))
        assert "deletedPlans" not in repo
    finally:
        release.touch()  # the killed pass's hook ends by itself
        if proc.poll() is None:
            proc.kill()


OK = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - meta: noop\n"


def test_a_new_migration_reruns_only_the_failed_and_canceled_vms(workspace_factory):
    ws = workspace_factory([small_vm("vm-a", 1), small_vm("vm-b", 2), small_vm("vm-c", 3)])
    migration = migration_yaml("demo-plan-1", "demo-plan") + "  cancel:\n    - name: vm-c\n"
    ws.user_commit(
        {
            "plans/demo-plan.yaml": with_prehook(
                plan_yaml("demo-plan", ["vm-a", "vm-b", "vm-c"]), "vm-b", "gate"
            ),
            "hooks/gate.yaml": hook_yaml("gate", FAIL),
            "migrations/demo-plan-1.yaml": migration,
        },
        "vm-b's PreHook fails, vm-c is canceled",
    )
    ws.reconcile("--once")
    vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
    assert {n: v["phase"] for n, v in vms.items()} == {
        "vm-a": "Completed",
        "vm-b": "Failed",
        "vm-c": "Canceled",
    }
    image = ws.cluster / NS / "disks" / "vm-a-disk-0.img"
    manifest = ws.cluster / NS / "virtualmachines" / "vm-a.yaml"
    before = (image.stat().st_mtime_ns, manifest.stat().st_mtime_ns)

    ws.user_commit(
        {
            "hooks/gate.yaml": hook_yaml("gate", OK),
            "migrations/demo-plan-2.yaml": migration_yaml("demo-plan-2", "demo-plan"),
        },
        "the gate opens; run the plan again",
    )
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mig = ws.status("migration", "demo-plan-2")["status"]
    assert [(c["type"], c["message"]) for c in mig["conditions"]] == [
        ("Succeeded", "2 VM(s) migrated.")
    ]
    vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
    assert {n: v["phase"] for n, v in vms.items()} == dict.fromkeys(vms, "Completed")
    steps = {s["name"]: s for s in vms["vm-b"]["pipeline"]}
    assert steps["PreHook"]["hook"]["result"] == "Succeeded"  # run again, by the new Migration
    assert (image.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == before  # vm-a untouched
    assert sorted(p.stem for p in (ws.cluster / NS / "virtualmachines").glob("*.yaml")) == [
        "vm-a",
        "vm-b",
        "vm-c",
    ]
