"""Hooks on the local target: real ansible-playbook runs in a VM's cold pipeline, with the OVA
source (a real OVA file) and a real progress store."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from plugins.ova.factory import build_ova
from reconciler.hooks.inputs import dump, plan_document
from reconciler.hooks.model import Hook
from reconciler.manifests.config import RepoConfig
from reconciler.manifests.loader import load_repo
from reconciler.pipeline.cold import run_vm
from reconciler.pipeline.steps import RunContext, start_record
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.targets.local import LocalTarget
from tests.support.hooks import PLAN
from tests.support.workspace import small_vm

MIB = 1024 * 1024


def playbook(*tasks: str) -> str:
    """A playbook for localhost that loads its inputs as MTV playbooks do: plan.yml relative to
    the playbook, workload.yml by the absolute path of the MTV docs' example."""
    body = "".join(f"    - {t}\n" for t in tasks)
    return (
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - include_vars: {file: plan.yml, name: plan}\n"
        "    - include_vars: {file: /tmp/hook/workload.yml, name: workload}\n" + body
    )


@pytest.fixture
def pipeline(tmp_path: Path):
    """Run the VM ``vm-a`` through the cold pipeline with the given hooks."""
    build_ova(tmp_path / "vm-a.ova", **small_vm("vm-a", 3, data_mib=1, capacity_mib=16))
    conn = connect("ova", str(tmp_path), {}, {})
    (inv,) = conn.inventory().vms
    store = ProgressStore(tmp_path / "progress.db")
    target = LocalTarget(tmp_path / "cluster")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "plan.yaml").write_text(PLAN)
    spec = load_repo(tmp_path / "repo", RepoConfig()).get("Plan", "openshift-mtv", "plan2j").spec

    def run(hooks: dict[str, Hook], migration="plan2j-1", prior=None, halt=None, clock=None):
        if clock is not None:
            target.clock = clock
        ctx = RunContext(
            store=store,
            source=conn,
            target=target,
            plan_key="openshift-mtv/plan2j",
            migration=migration,
            hooks={f"openshift-mtv/{h.name}": h for h in hooks.values()},
            plan_yml=dump(plan_document(spec)),
            halt=halt or threading.Event(),
        )
        vm = VmPlan(
            vm_id=inv.id,
            source_name="vm-a",
            target_name="vm-a",
            namespace="web",
            cpus=1,
            cores_per_socket=1,
            memory_mb=1024,
            firmware="bios",
            power_state="Off",
            guest_os="",
            disks=(DiskPlan(inv.disks[0].key, 16 * MIB, "vm-a-disk-0", "", "", ""),),
            nics=(),
            labels={"plan": "plan2j", "vmID": "vm-a"},
            hooks=tuple((step, f"openshift-mtv/{h.name}") for step, h in hooks.items()),
        )
        rec = prior or start_record(ctx, vm, store.get_vm(ctx.plan_key, inv.id))
        return run_vm(ctx, vm, rec), target

    yield run
    conn.close()
    store.close()


def _gone(pid: int, within: float = 30.0) -> bool:
    """True once ``pid`` has ended (a zombie waiting for its reaper counts as ended)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _hook(name: str, text: str, **kw) -> Hook:
    return Hook("openshift-mtv", name, playbook=text, **kw)


def _steps(rec) -> dict[str, dict]:
    return {s["name"]: s for s in rec.steps}


def test_pre_and_post_hooks_run_with_forklifts_inputs(pipeline, tmp_path: Path) -> None:
    out = tmp_path / "hook-out.txt"
    write = (
        "lineinfile: {path: %s, create: true, line: '{{ step }} {{ workload.vm.vm1.vm0.name }} "
        "{{ plan.targetnamespace }} {{ plan.provider.source.name }} {{ plan.vms[0].ref.id }}'}"
    )
    pre = _hook("pre", playbook("set_fact: {step: pre}", write % out))
    post = _hook("post", playbook("set_fact: {step: post}", write % out))
    rec, target = pipeline({"PreHook": pre, "PostHook": post})
    assert rec.result == "Succeeded", rec.error
    assert out.read_text().splitlines() == [
        "pre vm-a web vcenter vm-3696",
        "post vm-a web vcenter vm-3696",
    ]
    steps = _steps(rec)
    assert [s["name"] for s in rec.steps][0] == "PreHook"
    assert [s["name"] for s in rec.steps][-1] == "PostHook"
    for name, ref in (("PreHook", "openshift-mtv/pre"), ("PostHook", "openshift-mtv/post")):
        assert steps[name]["phase"] == "Completed"
        assert steps[name]["message"] == f"hook {ref} succeeded (ansible-playbook)"
        assert steps[name]["hook"]["result"] == "Succeeded"
        assert any("PLAY RECAP" in line for line in steps[name]["hook"]["log"])
    assert target.vm_names("web") == {"vm-a"}


def test_a_failed_prehook_fails_the_vm_before_anything_is_touched(pipeline) -> None:
    pre = _hook("pre", playbook("fail: {msg: 'the app is still writing'}"))
    rec, target = pipeline({"PreHook": pre})
    assert rec.result == "Failed"
    assert rec.error["phase"] == "PreHook"
    (reason,) = rec.error["reasons"]
    assert reason.startswith("PreHook openshift-mtv/pre failed (ansible-playbook): exited with")
    steps = _steps(rec)
    assert any("the app is still writing" in line for line in steps["PreHook"]["hook"]["log"])
    # nothing after it ran: the source was not even asked for its power state
    assert all(s["phase"] == "Pending" for s in rec.steps[1:])
    assert target.vm_names("web") == set()
    assert not (target.root / "web").exists()


def test_a_failed_posthook_fails_the_vm_and_keeps_what_migrated(pipeline) -> None:
    post = _hook("post", playbook("command: /bin/false"))
    rec, target = pipeline({"PostHook": post})
    assert rec.result == "Failed"
    assert rec.error["phase"] == "PostHook"
    assert _steps(rec)["CreateVM"]["phase"] == "Completed"
    assert target.vm_names("web") == {"vm-a"}
    assert (target.root / "web" / "disks" / "vm-a-disk-0.img").is_file()


def test_a_hook_past_its_deadline_is_killed_with_its_children(pipeline, tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    pre = _hook(
        "pre",
        playbook(f"shell: 'sleep 600 & echo $! > {pidfile}; wait'"),
        deadline=2,
    )

    def clock() -> float:
        """Time stands still until the playbook's child runs, then the deadline is past."""
        return 1e9 if pidfile.exists() and pidfile.read_text().strip() else 0.0

    rec, _ = pipeline({"PreHook": pre}, clock=clock)
    assert rec.result == "Failed"
    (reason,) = rec.error["reasons"]
    assert "exceeded its deadline of 2 s and was killed" in reason
    child = int(pidfile.read_text())
    assert _gone(child)  # the whole process group went, the playbook's child too


def test_a_completed_hook_is_not_run_again_by_the_next_pass(pipeline, tmp_path) -> None:
    """A pass killed after the hook ended but before its step was marked completed: the
    record says it succeeded for this Migration, so the next pass goes on without it."""
    out = tmp_path / "runs.txt"
    pre = _hook("pre", playbook(f"shell: 'echo ran >> {out}'"))
    halt = threading.Event()
    post = _hook("post", playbook("meta: noop"))
    rec, _ = pipeline({"PreHook": pre, "PostHook": post})
    assert out.read_text() == "ran\n"
    # the killed pass as the store holds it: PreHook running, its hook record complete
    rec.steps[0]["phase"] = "Running"
    rec.result, rec.completed, rec.phase = "", "", "PreHook"
    for step in rec.steps[1:]:
        step["phase"] = "Pending"
    rec2, _ = pipeline({"PreHook": pre, "PostHook": post}, prior=rec, halt=halt)
    assert rec2.result == "Succeeded"
    assert out.read_text() == "ran\n"  # not twice


def test_a_hook_that_was_running_runs_again(pipeline, tmp_path) -> None:
    out = tmp_path / "runs.txt"
    pre = _hook("pre", playbook(f"shell: 'echo ran >> {out}'"))
    rec, _ = pipeline({"PreHook": pre})
    rec.steps[0]["phase"] = "Running"
    rec.steps[0]["hook"] = {"name": "openshift-mtv/pre", "migration": "plan2j-1"}  # no result
    rec.result, rec.completed, rec.phase = "", "", "PreHook"
    rec2, _ = pipeline({"PreHook": pre}, prior=rec)
    assert rec2.result == "Succeeded"
    assert out.read_text() == "ran\nran\n"


def test_a_new_migration_runs_the_hook_again(pipeline, tmp_path) -> None:
    out = tmp_path / "runs.txt"
    pre = _hook("pre", playbook(f"shell: 'echo ran >> {out}'"))
    rec, _ = pipeline({"PreHook": pre})
    rec.result = "Failed"  # as a restart re-runs a failed VM
    rec2, _ = pipeline({"PreHook": pre}, migration="plan2j-2")
    assert rec2.migration == "plan2j-2" and rec2.result == "Succeeded"
    assert out.read_text() == "ran\nran\n"


def test_a_custom_image_needs_podman_or_docker(pipeline, monkeypatch, tmp_path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # neither podman nor docker here
    pre = Hook("openshift-mtv", "img", image="registry.example.com/tools/quiesce:1")
    rec, _ = pipeline({"PreHook": pre})
    assert rec.result == "Failed"
    (reason,) = rec.error["reasons"]
    assert (
        "registry.example.com/tools/quiesce:1 runs on the local target with podman or docker"
        in (reason)
    )
    assert "neither is installed" in reason


def test_the_inputs_as_the_playbook_saw_them(pipeline, tmp_path) -> None:
    dest = tmp_path / "seen"
    pre = _hook(
        "pre",
        playbook(
            f"copy: {{src: plan.yml, dest: {dest}-plan.yml}}",
            f"copy: {{src: /tmp/hook/workload.yml, dest: {dest}-workload.yml}}",
        ),
    )
    rec, _ = pipeline({"PreHook": pre})
    assert rec.result == "Succeeded", rec.error
    plan = YAML(typ="safe").load(Path(f"{dest}-plan.yml").read_text())
    workload = YAML(typ="safe").load(Path(f"{dest}-workload.yml").read_text())
    assert "metadata" not in plan and plan["targetnamespace"] == "web"
    assert workload["vm"]["vm1"]["vm0"]["name"] == "vm-a"
    assert base64.b64encode(b"x")  # the playbook travelled decoded
