"""Validation through the whole loop: rules pushed to the repo change what the plan may do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.rules_data import multiple_disks_rule
from tests.support.workspace import small_vm

pytestmark = pytest.mark.integration

DOCS_VM = Path(__file__).resolve().parents[1] / "validation" / "data" / "mtv_docs_vm.json"


def repo_status(ws) -> dict:
    return YAML(typ="safe").load(ws.remote_file("status/repo.yaml"))


def test_a_critical_custom_rule_blocks_the_plan_until_it_is_relaxed(workspace_factory) -> None:
    ws = workspace_factory([small_vm("single", 1), small_vm("double", 2, disks=2)])
    ws.user_commit({"rules/ova/multi.rego": multiple_disks_rule("Critical")}, "custom rule")

    plan_out = ws.cli("plan", str(ws.clone), "--state-dir", str(ws.root / "dry"))
    assert "! double: Critical [custom.multiple-disks] Multiple disks detected" in plan_out.stdout

    proc = ws.reconcile("--once")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = ws.status("plan", "demo-plan")["status"]
    crit = next(c for c in status["conditions"] if c["type"] == "VMCriticalConcerns")
    assert crit["category"] == "Critical"
    assert crit["items"] == ["double (custom.multiple-disks)"]
    assert not any(c["type"] == "Ready" for c in status["conditions"])
    flagged = {v["name"]: v["concerns"] for v in status["validation"]["vms"]}
    assert "custom.multiple-disks" in [c["id"] for c in flagged["double"]]
    assert "custom.multiple-disks" not in [c["id"] for c in flagged.get("single", [])]
    assert not (ws.cluster / "demo-vms").exists() or not list(
        (ws.cluster / "demo-vms").glob("disks/*.img")
    )  # nothing was copied
    rules = repo_status(ws)["validation"]["ova"]
    assert rules["customFiles"] == ["rules/ova/multi.rego"]
    assert any("multi.rego:7: Rego v0 `concerns[flag] {`" in w for w in rules["warnings"])

    shown = ws.cli("status", str(ws.clone), "--state-dir", str(ws.state))
    assert "Concerns (validation rules)" in shown.stdout
    assert "custom.multiple-disks" in shown.stdout

    # relaxed to a Warning without a version bump: the plan runs, status says to bump
    ws.user_commit({"rules/ova/multi.rego": multiple_disks_rule("Warning")}, "relax rule")
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = ws.status("plan", "demo-plan")["status"]
    assert [v["phase"] for v in status["migration"]["vms"]] == ["Completed", "Completed"]
    warn = next(c for c in status["conditions"] if c["type"] == "VMWarningConcerns")
    assert "double (custom.multiple-disks)" in warn["message"]
    rules = repo_status(ws)["validation"]["ova"]
    assert any("changed without a rules_version bump" in w for w in rules["warnings"])
    provider = ws.status("provider", "ova-files")["status"]
    assert any(c["type"] == "ValidationRulesWarning" for c in provider["conditions"])

    # bumped: the warning goes, the new version is recorded
    bumped = ws.cli("rules", "bump", str(ws.clone), "--provider", "ova-files", check=True)
    assert "rules/ova/rules_version.rego: rules_version 1 -> 2 (created)" in bumped.stdout
    ws.user_commit({}, "bump ova rules")
    ws.reconcile("--once", check=True)
    rules = repo_status(ws)["validation"]["ova"]
    assert rules["rulesVersion"] == 2
    assert not any("bump" in w for w in rules.get("warnings", []))


def test_broken_and_looping_rules_never_stop_the_reconciler(workspace_factory) -> None:
    ws = workspace_factory([small_vm("steady", 3)])
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text() + "validation:\n  timeoutSeconds: 1\n"
    ws.user_commit(
        {
            ".mtv-gitops.yaml": cfg,
            "rules/ova/broken.rego": "package io.konveyor.forklift.ova\n\nconcerns[flag] {\n",
        },
        "a broken rule",
    )
    lint = ws.cli("lint", str(ws.clone))
    assert lint.returncode == 1
    assert "rules/ova/broken.rego" in lint.stdout

    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the defaults validated; VM migrated
    provider = ws.status("provider", "ova-files")["status"]
    rejected = next(c for c in provider["conditions"] if c["type"] == "ValidationRulesRejected")
    assert "rules/ova/broken.rego" in rejected["message"]
    assert "defaults" in rejected["message"]
    plan = ws.status("plan", "demo-plan")["status"]
    assert [v["phase"] for v in plan["migration"]["vms"]] == ["Completed"]

    # the broken file replaced by one that loops for ever on this VM: a per-VM concern, no hang
    loop = (
        "package io.konveyor.forklift.ova\n\nimport rego.v1\n\n"
        'concerns contains {"id": "slow", "category": "Critical", "label": "slow"} if {\n'
        "  count([x | some x in numbers.range(1, 1000000000)]) > 0\n}\n"
    )
    ws.user_commit({"rules/ova/broken.rego": None, "rules/ova/loop.rego": loop}, "a slow rule")
    ws.user_commit(
        {"plans/other.yaml": ws.remote_file("plans/demo-plan.yaml").replace("demo-plan", "o")},
        "another plan",
    )
    proc = ws.reconcile("--once", timeout=600)  # a hang guard
    assert "Traceback" not in proc.stderr
    plan = ws.status("plan", "o")["status"]
    [concerns] = [v["concerns"] for v in plan["validation"]["vms"]]
    assert [c["id"] for c in concerns] == ["mtv-gitops.validation.failed"]
    assert "did not finish within 1 s" in concerns[0]["assessment"]


def test_rules_eval_and_rules_test_commands(workspace_factory, tmp_path: Path) -> None:
    ws = workspace_factory([small_vm("steady", 4)])
    out = ws.cli(
        "rules",
        "eval",
        str(ws.clone),
        "--provider",
        "vsphere",
        "--input",
        str(DOCS_VM),
        check=True,
    )
    result = json.loads(out.stdout)
    ids = {c.get("id") for c in result["concerns"]}
    assert {
        "vmware.drs.enabled",
        "vmware.usb_controller.detected",
        "vmware.snapshot.detected",
    } <= ids
    assert result["errors"] == []

    tested = ws.cli("rules", "test", str(ws.clone), "--defaults")
    assert tested.returncode == 0, tested.stdout
    assert "vsphere:" in tested.stdout and " 0 failed" in tested.stdout

    cases = (
        "- name: two disks are flagged\n"
        "  input: {name: x, disks: [{capacity: 1}, {capacity: 1}]}\n"
        "  expect: [custom.multiple-disks]\n"
        "- name: wrong on purpose\n"
        "  input: {name: x, disks: []}\n"
        "  expect: [custom.multiple-disks]\n"
    )
    (ws.clone / "rules/ova").mkdir(parents=True)
    (ws.clone / "rules/ova/multi.rego").write_text(multiple_disks_rule("Warning"))
    (ws.clone / "rules/ova/multi_cases.yaml").write_text(cases)
    (ws.clone / "rules/ova/multi_test.rego").write_text(
        "package io.konveyor.forklift.ova\n\nimport rego.v1\n\n"
        'test_with_input if {\n  c := concerns with input as {"disks": [1, 2]}\n'
        "  count(c) == 1\n}\n"
    )
    tested = ws.cli("rules", "test", str(ws.clone), "--provider", "ova")
    assert tested.returncode == 1
    assert "rules/ova/multi_cases.yaml:4" in tested.stdout
    assert "wrong on purpose" in tested.stdout
    assert "write this test as a data case" in tested.stdout  # regopy's `with input as` limit
    assert "ova: 1 passed, 2 failed" in tested.stdout
