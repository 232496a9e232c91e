"""``--log-format json``: one JSON object per line, with plan, migration, vm and phase fields on
the lines about them; plain text by default, as before.  Both keep JSON in the state dir."""

from __future__ import annotations

import json

import pytest

from tests.support.workspace import small_vm

pytestmark = pytest.mark.integration


def test_json_lines_carry_plan_migration_vm_and_phase(workspace_factory) -> None:
    ws = workspace_factory([small_vm("web-1", 1), small_vm("db-2", 2)])
    proc = ws.reconcile("--once", env={"MTV_GITOPS_LOG_FORMAT": "json"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    about_vms = [x for x in lines if x.get("vm")]
    assert {x["vm"] for x in about_vms} == {"web-1", "db-2"}
    for x in about_vms:
        assert x["plan"] == "openshift-mtv/demo-plan"
        assert x["migration"] == "demo-plan-1"
        assert x["phase"] and x["vm_id"]
    copy = [x for x in about_vms if x["phase"] == "CopyDisks" and x.get("outcome") == "Completed"]
    assert {x["vm"] for x in copy} == {"web-1", "db-2"}
    ended = [x for x in lines if x.get("logger") == "mtv_gitops.pipeline" and not x.get("vm")]
    assert any(x.get("outcome") == "Succeeded" and x["migration"] == "demo-plan-1" for x in ended)
    assert any("pass at" in x["message"] for x in lines)  # the pass summary is a line too
    kept = (ws.state / "logs" / "reconciler.log").read_text().splitlines()
    assert any(json.loads(line).get("vm") == "web-1" for line in kept)


def test_text_by_default(workspace_factory) -> None:
    ws = workspace_factory([small_vm("web-1", 1)])
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pass at" in proc.stdout and not proc.stdout.lstrip().startswith("{")
    kept = (ws.state / "logs" / "reconciler.log").read_text().splitlines()
    assert any(json.loads(line).get("vm") == "web-1" for line in kept)
