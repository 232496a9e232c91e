"""A push of a plan cold-migrates VMs from OVA files to the local target; status comes back."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from reconciler.transfer.digest import disk_digest_of_file
from tests.support.workspace import migration_yaml, small_vm

pytestmark = pytest.mark.integration


def test_cold_migration_end_to_end(workspace_factory) -> None:
    ws = workspace_factory(
        [
            small_vm("Web_Server 01", 1),
            small_vm("db-two-disks", 2, disks=2, nics=("VM Network", "backend")),
        ]
    )
    first_user_commit = ws.log()[0].split()[0]
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    plan = ws.status("plan", "demo-plan")["status"]
    vms = {v["name"]: v for v in plan["migration"]["vms"]}
    assert {v["phase"] for v in vms.values()} == {"Completed"}
    assert vms["Web_Server 01"]["newName"] == "web-server01"
    steps = {s["name"]: s for s in vms["db-two-disks"]["pipeline"]}
    assert steps["CopyDisks"]["phase"] == "Completed"
    assert [t["verified"] for t in steps["CopyDisks"]["tasks"]] == [True, True]
    assert steps["ConvertGuest"]["phase"] == "Skipped"
    assert steps["ConvertGuest"]["message"].startswith("skipped: ")
    assert plan["migration"]["history"][0]["migration"]["name"] == "demo-plan-1"
    assert plan["migration"]["history"][0]["conditions"][0]["type"] == "Succeeded"
    mig = ws.status("migration", "demo-plan-1")["status"]
    assert [c["type"] for c in mig["conditions"]] == ["Succeeded"]

    # the target holds schema-checked manifests and byte-identical disks
    ns = ws.cluster / "demo-vms"
    vm = YAML(typ="safe").load((ns / "virtualmachines" / "db-two-disks.yaml").read_text())
    ifaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    assert [i["macAddress"] for i in ifaces] == ["00:50:56:01:02:00", "00:50:56:01:02:01"]
    nets = vm["spec"]["template"]["spec"]["networks"]
    assert nets == [
        {"name": "net-0", "pod": {}},
        {"name": "net-1", "multus": {"networkName": "demo-vms/backend-net"}},
    ]
    for name, info in ws.ovas.items():
        target = "web-server01" if name == "Web_Server 01" else name
        for i, disk in enumerate(info.disks):
            image = ns / "disks" / f"{target}-disk-{i}.img"
            assert disk_digest_of_file(image) == disk.digest
            assert image.stat().st_blocks * 512 < disk.capacity / 4  # stayed sparse

    # status commits are the reconciler's, touch only status/, and sit on the user's commit
    log = ws.log()
    assert log[-1].startswith(first_user_commit)
    ours = [line for line in log if " mtv-gitops@localhost " in line]
    assert ours and all(line.split()[2] == "status:" for line in ours)
    for line in ours:
        sha = line.split()[0]
        files = ws.log_files(sha)
        assert files and all(f.startswith("status/") for f in files)


def test_second_pass_changes_nothing(workspace_factory) -> None:
    ws = workspace_factory([small_vm("vm-a", 1)])
    ws.reconcile("--once", check=True)
    head = ws.log()[0]
    ws.reconcile("--once", check=True)
    assert ws.log()[0] == head  # no new commit, no duplicate VM or PVC
    assert sorted(p.name for p in (ws.cluster / "demo-vms" / "pvcs").iterdir()) == [
        "vm-a-disk-0.yaml"
    ]


def test_plan_with_a_broken_ova_is_not_ready_and_nothing_is_written(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("good-vm", 1), small_vm("broken-vm", 2)],
        **{"broken-vm": {"omit_disks": [0]}},
    )
    proc = ws.reconcile("--once")
    assert proc.returncode == 1, proc.stdout
    assert "1 plan(s) not ready" in proc.stdout
    printed = proc.stdout.replace("\n", " ")
    assert "plan openshift-mtv/demo-plan not ready: VMSourceNotValid" in printed
    assert "broken-vm-disk1.vmdk" in printed
    plan = ws.status("plan", "demo-plan")["status"]
    cond = {c["type"]: c for c in plan["conditions"]}
    assert "broken-vm" in cond["VMSourceNotValid"]["message"]
    assert "broken-vm-disk1.vmdk" in cond["VMSourceNotValid"]["message"]
    assert "Ready" not in cond
    assert "MigrationWaiting" in cond
    assert not (ws.cluster / "demo-vms").exists()  # nothing half-written

    ws.add_ova(small_vm("broken-vm", 2))  # the user repairs the OVA: the same Migration runs
    ws.reconcile("--once", check=True)
    plan = ws.status("plan", "demo-plan")["status"]
    assert {v["phase"] for v in plan["migration"]["vms"]} == {"Completed"}


def test_new_migration_reruns_only_failed_vms(workspace_factory) -> None:
    ws = workspace_factory([small_vm("good-vm", 1), small_vm("unlucky-vm", 2)])
    blocker = ws.cluster / "demo-vms" / "disks" / "unlucky-vm-disk-0.img"
    blocker.mkdir(parents=True)  # the target cannot create this disk image
    proc = ws.reconcile("--once")
    assert proc.returncode == 1
    plan = ws.status("plan", "demo-plan")["status"]
    first = {v["name"]: v for v in plan["migration"]["vms"]}
    assert first["good-vm"]["phase"] == "Completed"
    assert first["unlucky-vm"]["phase"] == "Failed"
    assert first["unlucky-vm"]["error"]["phase"] == "AllocateDisks"
    assert "unlucky-vm-disk-0.img" in first["unlucky-vm"]["error"]["reasons"][0]
    assert ws.status("migration", "demo-plan-1")["status"]["conditions"][0]["type"] == "Failed"

    blocker.rmdir()
    ws.user_commit(
        {"migrations/demo-plan-2.yaml": migration_yaml("demo-plan-2", "demo-plan")},
        "retry the failed VM",
    )
    ws.reconcile("--once", check=True)
    plan = ws.status("plan", "demo-plan")["status"]
    second = {v["name"]: v for v in plan["migration"]["vms"]}
    assert second["good-vm"] == first["good-vm"]  # not touched again
    assert second["unlucky-vm"]["phase"] == "Completed"
    assert second["unlucky-vm"]["migration"] == "demo-plan-2"
    history = plan["migration"]["history"]
    assert [(h["migration"]["name"], h["conditions"][0]["type"]) for h in history] == [
        ("demo-plan-1", "Failed"),
        ("demo-plan-2", "Succeeded"),
    ]

    ws.user_commit(
        {"migrations/demo-plan-3.yaml": migration_yaml("demo-plan-3", "demo-plan")},
        "once more",
    )
    ws.reconcile("--once", check=True)
    third = ws.status("migration", "demo-plan-3")["status"]["conditions"][0]
    assert (third["type"], third["message"]) == (
        "Succeeded",
        "Nothing to migrate: every VM had succeeded.",
    )


def test_plan_status_and_lint_commands_tell_the_story(workspace_factory) -> None:
    ws = workspace_factory([small_vm("Story_VM", 8)])
    state = ["--state-dir", str(ws.state)]
    dry = ws.cli("plan", str(ws.clone), *state, "--cluster", str(ws.cluster), check=True)
    assert "Migration demo-plan-1 would run 1 VM(s)" in dry.stdout
    assert "Story_VM -> VirtualMachine demo-vms/story-vm" in dry.stdout
    assert "PVC story-vm-disk-0 [standard, ReadWriteOnce, Filesystem]" in dry.stdout
    assert not ws.cluster.exists() and ws.remote_file("status/repo.yaml") is None  # dry

    ws.reconcile(check=True)
    table = ws.cli("status", str(ws.clone), *state, check=True).stdout
    assert "openshift-mtv/demo-plan" in table and "Succeeded" in table
    assert "story-vm" in table and "Completed" in table and "100% of 64 MB" in table
    as_json = ws.cli("status", str(ws.clone), *state, "--json", check=True).stdout
    assert '"newName": "story-vm"' in as_json

    again = ws.cli("plan", str(ws.clone), *state, check=True)  # the cluster is remembered
    assert "Story_VM (story-vm): Succeeded in Migration demo-plan-1; nothing to do" in again.stdout
    assert ws.cli("lint", str(ws.clone), check=True).returncode == 0
