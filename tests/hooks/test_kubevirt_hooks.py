"""Hooks on the kubevirt target: a Job per hook run in the emulated cluster (kmock), its pod
played by the test's hook kubelet with the ConfigMap's files (tests/support/hooks.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from plugins.ova.factory import build_ova
from reconciler.daemon.lifecycle import clean_up_plan
from reconciler.hooks.model import Hook, HookRun
from reconciler.pipeline.cold import run_vm
from reconciler.pipeline.steps import RunContext, start_record
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore, VmProgress
from reconciler.targets.kubevirt.hook_job import hook_job_name
from reconciler.targets.kubevirt.target import KubevirtTarget
from reconciler.targets.kubevirt.transfer_job import JobSettings
from tests.support.cluster import TOKEN, Cluster
from tests.support.hooks import HookKubelet
from tests.support.workspace import small_vm

NS = "web"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
PLAN_YML = "targetnamespace: web\nprovider:\n  source: {name: vcenter}\n"
SEEN = "{{ workload.vm.vm1.vm0.name }} {{ workload.vm.ipaddress }} {{ plan.targetnamespace }}"
WORKLOAD_YML = "vm:\n  vm1:\n    vm0: {id: vm-3696, name: web-01}\n  ipaddress: 10.0.0.7\n"


@pytest.fixture
def target(cluster: Cluster) -> KubevirtTarget:
    return KubevirtTarget.from_url(
        cluster.url, TOKEN, settings=JobSettings(image="example.org/mtv:1", poll_seconds=0.05)
    )


@pytest.fixture
def hook_kubelet(cluster: Cluster, tmp_path: Path) -> Iterator[HookKubelet]:
    k = HookKubelet(cluster, tmp_path / "hook-pods").start()
    yield k
    k.stop()


def _run(playbook: str, **hook) -> HookRun:
    return HookRun(
        hook=Hook("openshift-mtv", "pre", playbook=playbook, **hook),
        step="PreHook",
        plan="plan2j",
        plan_namespace="openshift-mtv",
        migration="plan2j-1",
        vm_id="vm-3696",
        vm_name="web-01",
        namespace=NS,
        plan_yml=PLAN_YML,
        workload_yml=WORKLOAD_YML,
        service_account=hook.get("service_account", ""),
        labels={"plan": "plan2j", "vmID": "vm-3696", "migration": "plan2j-1", "step": "prehook"},
        halt=threading.Event(),
    )


def _playbook(*tasks: str) -> str:
    return (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - include_vars: {file: plan.yml, name: plan}\n"
        "    - include_vars: {file: /tmp/hook/workload.yml, name: workload}\n"
        + "".join(f"    - {t}\n" for t in tasks)
    )


def test_a_hook_is_a_job_named_as_mtv_names_it_with_its_inputs_mounted(
    target, cluster, hook_kubelet, tmp_path
) -> None:
    out = tmp_path / "seen.txt"
    run = _run(
        _playbook(f"copy: {{dest: {out}, content: '{SEEN}'}}"),
        service_account="hook-runner",
        deadline=300,
    )
    outcome = target.run_hook(run)
    assert outcome.succeeded, outcome
    assert out.read_text() == "web-01 10.0.0.7 web"
    name = hook_job_name(run)
    assert name.startswith("plan2j-vm-3696-prehook-") and len(name.rsplit("-", 1)[1]) == 5
    assert outcome.how == f"Job {NS}/{name}"
    assert any("PLAY RECAP" in line for line in outcome.log)
    job = cluster.get(f"{JOBS}/{name}")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "quay.io/konveyor/hook-runner"
    assert container["command"] == [
        "/bin/entrypoint",
        "ansible-runner",
        "run",
        "/tmp/runner",
        "-p",
        "/tmp/hook/playbook.yml",
    ]
    assert container["volumeMounts"] == [{"name": "hook", "mountPath": "/tmp/hook"}]
    assert pod["volumes"] == [{"name": "hook", "configMap": {"name": name}}]
    assert pod["serviceAccountName"] == "hook-runner"
    assert pod["activeDeadlineSeconds"] == 300 and job["spec"]["backoffLimit"] == 1
    (ran,) = hook_kubelet.pods
    assert set(ran.files) == {"playbook.yml", "plan.yml", "workload.yml"}
    assert YAML(typ="safe").load(ran.files["workload.yml"])["vm"]["ipaddress"] == "10.0.0.7"
    # a killed pass asks again: the Job that ran is found, not started twice
    assert target.run_hook(run).succeeded
    assert len(hook_kubelet.pods) == 1


def test_a_failing_hook_job_fails_with_its_log(target, hook_kubelet) -> None:
    outcome = target.run_hook(_run(_playbook("fail: {msg: 'database still open'}")))
    assert not outcome.succeeded
    assert outcome.message == "its pod failed twice (backoffLimit 1)"
    assert any("database still open" in line for line in outcome.log)
    assert len(hook_kubelet.pods) == 2  # backoffLimit 1: one retry


def test_a_hook_job_past_its_deadline_fails_saying_so(
    target, cluster, hook_kubelet, tmp_path
) -> None:
    started = tmp_path / "started"
    hook_kubelet.deadline_passed = lambda job, folder: started.exists()
    playbook = _playbook(f"file: {{path: {started}, state: touch}}", "pause: {seconds: 600}")
    run = _run(playbook, deadline=5)
    outcome = target.run_hook(run)
    assert not outcome.succeeded
    assert outcome.message == "exceeded its deadline of 5 s and was stopped"


def test_the_plans_cleanup_removes_hook_and_transfer_leftovers_but_not_migrated_vms(
    target, cluster, tmp_path
) -> None:
    """Archive or delete on the kubevirt target: what a migrated VM (vm-1) and a failed one
    (vm-2) left is removed, the migrated VM and its disk stay."""
    cluster.create("/api/v1/namespaces", {"metadata": {"name": NS}})

    def obj(path: str, kind: str, name: str, vm: str, component: str = "", **extra) -> None:
        labels = {"plan": "plan2j", "vmID": vm, "migration": "plan2j-1"}
        if component:
            labels["app.kubernetes.io/component"] = component
        meta = {"name": name, "namespace": NS, "labels": labels}
        cluster.create(path, {"apiVersion": "v1", "kind": kind, "metadata": meta, **extra})

    pvcs, secrets = (
        f"/api/v1/namespaces/{NS}/persistentvolumeclaims",
        f"/api/v1/namespaces/{NS}/secrets",
    )
    vms = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines"
    for vm in ("vm-1", "vm-2"):
        obj(pvcs, "PersistentVolumeClaim", f"{vm}-disk-0", vm)
        obj(pvcs, "PersistentVolumeClaim", f"{vm}-disk-0-ckpt", vm, "transfer")
        obj(JOBS, "Job", f"{vm}-disk-0-xfer", vm, "transfer")
        obj(secrets, "Secret", f"{vm}-disk-0-xfer", vm, "transfer")
        obj(JOBS, "Job", f"plan2j-{vm}-prehook-abcde", vm, "hook")
        obj(CMS, "ConfigMap", f"plan2j-{vm}-prehook-abcde", vm, "hook")
    obj(vms, "VirtualMachine", "vm-1", "vm-1")
    store = ProgressStore(tmp_path / "progress.db")
    created = [{"name": "CreateVM", "phase": "Completed"}]
    store.put_vm(
        VmProgress(
            "openshift-mtv/plan2j", "vm-1", "vm-1", "plan2j-1", result="Succeeded", steps=created
        )
    )
    store.put_vm(VmProgress("openshift-mtv/plan2j", "vm-2", "vm-2", "plan2j-1", result="Failed"))
    done = clean_up_plan(store, target, "openshift-mtv/plan2j", NS, None, "the Plan was archived")
    assert not done.problems
    assert cluster.names(JOBS) == []
    assert cluster.names(CMS) == []
    assert cluster.names(secrets) == []
    assert cluster.names(pvcs) == ["vm-1-disk-0"]
    assert cluster.names(vms) == ["vm-1"]
    store.close()


def test_a_failed_prehook_job_fails_the_vm_before_any_disk_is_made(
    target, cluster, hook_kubelet, tmp_path
) -> None:
    build_ova(tmp_path / "web-01.ova", **small_vm("web-01", 4, data_mib=1, capacity_mib=16))
    conn = connect("ova", str(tmp_path), {}, {})
    (inv,) = conn.inventory().vms
    store = ProgressStore(tmp_path / "progress.db")
    hook = Hook("openshift-mtv", "pre", playbook=_playbook("fail: {msg: 'not in the window'}"))
    ctx = RunContext(
        store=store,
        source=conn,
        target=target,
        plan_key="openshift-mtv/plan2j",
        migration="plan2j-1",
        hooks={"openshift-mtv/pre": hook},
        plan_yml=PLAN_YML,
    )
    vm = VmPlan(
        vm_id=inv.id,
        source_name="web-01",
        target_name="web-01",
        namespace=NS,
        cpus=1,
        cores_per_socket=1,
        memory_mb=1024,
        firmware="bios",
        power_state="Off",
        guest_os="",
        disks=(DiskPlan(inv.disks[0].key, 16 * 1024 * 1024, "web-01-disk-0", "", "", ""),),
        nics=(),
        labels={"plan": "plan2j", "vmID": "web-01"},
        hooks=(("PreHook", "openshift-mtv/pre"),),
    )
    try:
        rec = run_vm(ctx, vm, start_record(ctx, vm, None))
    finally:
        conn.close()
        store.close()
    assert rec.result == "Failed" and rec.error["phase"] == "PreHook"
    (reason,) = rec.error["reasons"]
    assert reason.startswith("PreHook openshift-mtv/pre failed (Job web/plan2j-")
    step = rec.steps[0]
    assert any("not in the window" in line for line in step["hook"]["log"])
    assert all(s["phase"] == "Pending" for s in rec.steps[1:])
    assert cluster.names(f"/api/v1/namespaces/{NS}/persistentvolumeclaims") == []
    job = cluster.list(JOBS)[0]
    assert job["metadata"]["labels"]["migration"] == "plan2j-1"
