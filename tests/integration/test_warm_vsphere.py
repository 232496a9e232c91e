"""A warm vSphere plan against the simulator, through git: the initial copy and the cutover
proposal, a precopy round of what the guest wrote, then the cutover once the branch is merged."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import git
import pytest
from ruamel.yaml import YAML

from tests.support.vsphere import (
    connect,
    start_simulator,
    wait,
)
from tests.support.vsphere_repo import (
    BRANCH,
    CONFIG,
    PLAN,
    PLAN_FILE,
    make_round_due,
    map_ids,
    merge_as_reviewer,
    our_snapshots,
    reconcile_once,
    remove_snapshot,
    set_cutover,
    snapshot_tree,
    vm_status,
    vms_by_name,
    vsphere_repo,
    warm_source,
    warm_workspace,
    write_tracked,
)
from tests.support.workspace import CLI, USER_ENV, small_vm

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def test_a_warm_plan_copies_rounds_and_cuts_over_when_the_branch_is_merged(
    workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        vm_id, key, disk_file, data, others = warm_source(sim)
        plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
        plan = plan.replace("  vms:\n", "  vms:\n    - name: DC0_H0_VM0\n")
        plan = plan.replace(
            "  targetNamespace: vs-vms\n", "  targetNamespace: vs-vms\n  warm: true\n"
        )
        ws = workspace_factory([small_vm("steady", 1)])
        env = vsphere_repo(ws, sim, tmp_path, plan.format(), map_ids(sim))
        ws.user_commit({".mtv-gitops.yaml": CONFIG}, "precopy every few seconds")

        # pass 1: initial snapshot, full copy, the VM waits; the cutover is proposed
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warm migration waiting: next precopy round or cutover at " in proc.stdout
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        warm = vm["warm"]
        [round0] = warm["precopies"]  # the full copy, Forklift's first precopy
        assert round0["round"] == 0 and round0["full"] and warm["nextPrecopyAt"]
        assert warm["successes"] == 1
        assert warm["cutover"]["branch"] == BRANCH
        assert BRANCH in warm["cutover"]["instruction"]
        remote = git.Repo(ws.remote)
        diff = remote.git.diff(f"main...{BRANCH}", "--unified=0")
        changed = [
            line
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        assert len(changed) == 1 and changed[0].startswith("+  cutover: "), diff
        assert remote.git.diff(f"main...{BRANCH}", "--name-only").split() == ["plans/vs-plan.yaml"]

        # the guest writes; pass 2 after the interval copies only what changed
        write_tracked(sim, disk_file, data, 1 * MiB, b"\x11" * 4096)
        write_tracked(sim, disk_file, data, 5 * MiB + 512, b"\x22" * 65536)
        make_round_due(ws)
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        [_, round1] = vm["warm"]["precopies"]
        assert round1["round"] == 1 and round1["extents"] == 2
        assert round1["chunks"] == 2  # two 1 MiB chunks touched
        assert 4096 + 65536 <= round1["bytes"] <= 2 * MiB
        assert round1["start"] <= round1["end"]

        # more writes, the reviewer merges: pass 3 cuts over
        write_tracked(sim, disk_file, data, 7 * MiB, b"\x33" * 8192)
        merge_as_reviewer(ws)
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vm = vm_status(ws)
        assert vm["phase"] == "Completed", vm
        warm = vm["warm"]
        assert warm["precopies"][-1].get("final") is True
        assert 8192 <= warm["cutover"]["bytes"] <= MiB
        assert warm["cutover"]["downtimeSeconds"] >= 0 and warm["cutover"]["powerOffAt"]
        assert "nextPrecopyAt" not in warm and warm["successes"] == 3
        steps = {s["name"]: s["phase"] for s in vm["pipeline"]}
        for name in ("PowerOffSource", "CreateFinalSnapshot", "CopyFinalDelta", "CreateVM"):
            assert steps[name] == "Completed"

        disks = sorted((ws.cluster / "vs-vms" / "disks").glob("dc0-h0-vm0-disk-*.img"))
        blobs = [d.read_bytes() for d in disks]
        assert bytes(data) in blobs  # byte-identical to the source's final content
        assert sorted(blobs) == sorted([bytes(data), *others])
        manifest = (ws.cluster / "vs-vms" / "virtualmachines" / "dc0-h0-vm0.yaml").read_text()
        assert "runStrategy: Always" in manifest  # the source ran

        conn = connect(sim)
        source = vms_by_name(conn.si)["DC0_H0_VM0"]
        assert source.runtime.powerState == "poweredOff"
        assert snapshot_tree(conn.si, source) == []  # no mtv-gitops snapshot left
        assert source._moId == vm_id
        conn.close()
        assert key
    finally:
        sim.stop()


def test_a_reviewers_push_is_kept_and_merge_reschedule_cancel_steer_the_cutover(
    workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        _, _, disk_file, data, _ = warm_source(sim)
        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0")
        reconcile_once(ws, env)
        assert vm_status(ws)["warm"]["cutover"]["branch"] == BRANCH

        # a reviewer pushes to the proposed branch: a later time than proposed
        review = git.Repo.clone_from(str(ws.remote), str(tmp_path / "reviewer"))
        with review.git.custom_environment(**USER_ENV):
            review.git.checkout(BRANCH)
            path = Path(review.working_dir) / PLAN_FILE
            text = path.read_text()
            [line] = [x for x in text.splitlines() if x.startswith("  cutover:")]
            path.write_text(text.replace(line, '  cutover: "2099-01-01T00:00:00Z"'))
            review.git.commit("-am", "Cut over in 2099, not now")
            review.git.push("origin", BRANCH)
            reviewer_tip = review.head.commit.hexsha

        write_tracked(sim, disk_file, data, 3 * MiB, b"\x44" * 4096)
        make_round_due(ws)
        reconcile_once(ws, env)  # round 1; the proposal is not pushed over the reviewer's commit
        remote = git.Repo(ws.remote)
        assert remote.commit(BRANCH).hexsha == reviewer_tip
        warm = vm_status(ws)["warm"]
        assert [r["round"] for r in warm["precopies"]] == [0, 1]

        # merged: the cutover waits for 2099, rounds go on
        with review.git.custom_environment(**USER_ENV):
            review.git.checkout("main")
            review.git.pull("origin", "main")
            review.git.merge("--no-ff", "-m", "Merge the cutover", BRANCH)
            review.git.push("origin", "main")
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        assert vm["warm"]["cutover"]["scheduledAt"].startswith("2099-01-01T00:00:00")

        # rescheduled on main by the user
        set_cutover(ws, "2098-06-01T00:00:00Z", "Sooner")
        reconcile_once(ws, env)
        cut = vm_status(ws)["warm"]["cutover"]
        assert cut["scheduledAt"].startswith("2098-06-01T00:00:00"), cut
        assert "rescheduled from 2099-01-01" in cut["message"], cut

        # the line removed: the cutover is canceled, precopy goes on
        set_cutover(ws, None, "Not yet")
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused" and "scheduledAt" not in vm["warm"]["cutover"]
        assert "cancelled" in vm["warm"]["cutover"]["message"], vm["warm"]

        # the user sets it to now: cut over at once
        write_tracked(sim, disk_file, data, 6 * MiB, b"\x55" * 8192)
        mine = set_cutover(ws, "2020-01-01T00:00:00Z", "Now")
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "Completed", vm
        blobs = [d.read_bytes() for d in (ws.cluster / "vs-vms" / "disks").glob("*.img")]
        assert bytes(data) in blobs
        assert our_snapshots(sim, "DC0_H0_VM0") == []
        # every commit of the user and the reviewer is on main, in order, none rewritten
        history = [c.hexsha for c in remote.iter_commits("main")]
        assert reviewer_tip in history and mine in history
        assert history.index(mine) < history.index(reviewer_tip)
    finally:
        sim.stop()


def test_a_reconciler_killed_between_rounds_resumes_from_the_stored_change_id(
    workspace_factory, tmp_path
) -> None:
    """The daemon is killed -9 after a round; a snapshot is left as a kill between
    CreateSnapshot and recording it would leave it. The next reconciler copies exactly what
    was written since the last round, removes the stray snapshot and cuts over clean.
    (A user's snapshot beside ours is covered in tests/pipeline: over HTTPS a VM with user
    snapshots cannot go warm, see README.)"""
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        _, _, disk_file, data, _ = warm_source(sim)
        # rounds 10 s apart: the kill after round 1 lands before round 2 starts, however late
        # the test sees round 1 in the status
        interval = 10.0
        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0", interval=interval)
        write_tracked(sim, disk_file, data, 2 * MiB, b"\x66" * 4096)  # before round 1
        daemon = subprocess.Popen(
            [*CLI, "daemon", str(ws.clone), "--state-dir", str(ws.state)]
            + ["--cluster", str(ws.cluster), "--interval", "30"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
        try:
            deadline = time.monotonic() + 300  # a safety net, not a measure of speed
            while True:
                assert time.monotonic() < deadline, "no precopy round in time"
                text = ws.remote_file("status/plan/openshift-mtv/vs-plan.yaml")
                rounds = []
                if text:
                    doc = YAML(typ="safe").load(text)["status"]
                    for vm in (doc.get("migration") or {}).get("vms") or []:
                        rounds = (vm.get("warm") or {}).get("precopies", [])
                if len(rounds) >= 2:
                    break
                time.sleep(0.2)
        finally:
            daemon.kill()  # -9: no shutdown, no pause recorded
            daemon.wait(10)

        conn = connect(sim)
        source = vms_by_name(conn.si)["DC0_H0_VM0"]
        # named like ours but never named in this state folder's record: another reconciler's
        wait(
            source.CreateSnapshot_Task(name="mtv-gitops-vs-plan-1-99", memory=False, quiesce=False)
        )
        conn.close()

        write_tracked(sim, disk_file, data, 7 * MiB + 4096, b"\x77" * 12288)  # after the kill
        make_round_due(ws)  # the daemon is gone: its store is ours to move on
        reconcile_once(ws, env)
        warm = vm_status(ws)["warm"]
        last = warm["precopies"][-1]
        assert last["extents"] == 1, warm  # only the write after the kill: the right change id
        assert 12288 <= last["bytes"] <= MiB
        names = our_snapshots(sim, "DC0_H0_VM0")
        assert "mtv-gitops-vs-plan-1-99" in names and len(names) == 2, names  # left alone
        remove_snapshot(sim, "DC0_H0_VM0", "mtv-gitops-vs-plan-1-99")

        set_cutover(ws, "2020-01-01T00:00:00Z", "Now")
        reconcile_once(ws, env)
        assert vm_status(ws)["phase"] == "Completed"
        blobs = [d.read_bytes() for d in (ws.cluster / "vs-vms" / "disks").glob("*.img")]
        assert bytes(data) in blobs
        assert our_snapshots(sim, "DC0_H0_VM0") == []
    finally:
        sim.stop()


def test_cancel_and_plan_deletion_remove_the_snapshots_of_waiting_warm_vms(
    workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=2, datastores=2)
    try:
        warm_source(sim, "DC0_H0_VM0", seed=5)
        warm_source(sim, "DC0_H0_VM1", seed=9)
        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0", "DC0_H0_VM1")
        reconcile_once(ws, env)
        vms = ws.status("plan", "vs-plan")["status"]["migration"]["vms"]
        assert [v["phase"] for v in vms] == ["CopyingPaused", "CopyingPaused"], vms
        for name in ("DC0_H0_VM0", "DC0_H0_VM1"):
            assert len(our_snapshots(sim, name)) == 1
        disks = ws.cluster / "vs-vms" / "disks"
        assert list(disks.glob("dc0-h0-vm0-*.img")) and list(disks.glob("dc0-h0-vm1-*.img"))

        git.Repo(ws.clone).git.pull("--rebase", "origin", "main")
        text = (ws.clone / PLAN_FILE).read_text()
        text = text.replace(
            "  plan: {name: vs-plan, namespace: openshift-mtv}\n",
            "  plan: {name: vs-plan, namespace: openshift-mtv}\n  cancel:\n"
            "    - name: DC0_H0_VM0\n",
        )
        ws.user_commit({PLAN_FILE: text}, "Cancel VM0")
        reconcile_once(ws, env)
        vms = {v["name"]: v for v in ws.status("plan", "vs-plan")["status"]["migration"]["vms"]}
        assert vms["DC0_H0_VM0"]["phase"] == "Canceled", vms
        assert vms["DC0_H0_VM1"]["phase"] == "CopyingPaused", vms
        assert our_snapshots(sim, "DC0_H0_VM0") == []
        assert len(our_snapshots(sim, "DC0_H0_VM1")) == 1
        assert not list(disks.glob("dc0-h0-vm0-*.img"))  # canceled: target disks removed

        ws.user_commit({PLAN_FILE: None}, "Drop the plan")
        reconcile_once(ws, env)
        assert our_snapshots(sim, "DC0_H0_VM1") == []
        conn = connect(sim)
        assert {
            vms_by_name(conn.si)[n].runtime.powerState for n in ("DC0_H0_VM0", "DC0_H0_VM1")
        } == {"poweredOn"}
        conn.close()
    finally:
        sim.stop()


def test_a_disk_without_changed_block_tracking_keeps_a_warm_plan_not_ready(
    workspace_factory, tmp_path
) -> None:
    """CBT on for the VM, off for one disk (scsiX:Y.ctkEnabled = FALSE): the plan is Not
    Ready naming that disk, and nothing is done to the VM."""
    from pyVmomi import vim

    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        _, key, _, _, _ = warm_source(sim)
        conn = connect(sim)
        vm = vms_by_name(conn.si)["DC0_H0_VM0"]
        disk = next(d for d in vm.config.hardware.device if str(d.key) == key)
        controller = next(c for c in vm.config.hardware.device if c.key == disk.controllerKey)
        setting = f"scsi{controller.busNumber}:{disk.unitNumber}.ctkEnabled"
        option = vim.option.OptionValue(key=setting, value="FALSE")
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[option])))
        conn.close()

        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0")
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr  # a plan not ready
        conditions = {c["type"]: c for c in ws.status("plan", "vs-plan")["status"]["conditions"]}
        cbt = conditions["VMChangeTrackingDisabled"]
        assert cbt["category"] == "Critical" and f"DC0_H0_VM0 (disk {key})" in cbt["message"]
        assert "Ready" not in conditions  # Forklift shows Ready only when it is
        assert our_snapshots(sim, "DC0_H0_VM0") == []
    finally:
        sim.stop()
