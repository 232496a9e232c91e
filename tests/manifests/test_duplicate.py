"""``mtv-gitops plan duplicate``: a copy of a Plan beside it, comments and order kept."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.manifests.config import RepoConfig
from reconciler.manifests.duplicate import DuplicateError, duplicate_plan
from reconciler.manifests.loader import load_repo

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "repo"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    plan = root / "plans" / "demo-plan.yaml"
    plan.write_text(
        plan.read_text().replace("  warm: false\n", "  warm: false\n  archived: true\n")
    )
    return root


def test_the_copy_keeps_comments_vms_maps_and_hooks(repo: Path) -> None:
    made = duplicate_plan(repo, "demo-plan", "demo-plan-again", target_namespace="moved-vms")
    assert made.path == repo / "plans" / "demo-plan-again.yaml"
    old = (repo / "plans" / "demo-plan.yaml").read_text()
    new = made.path.read_text()
    # every comment of the old file is in the new one, in the same order
    comments = [line.split("#", 1)[1] for line in old.splitlines() if "#" in line]
    assert [line.split("#", 1)[1] for line in new.splitlines() if "#" in line] == comments
    assert "name: demo-plan-again\n" in new
    assert "targetNamespace: moved-vms\n" in new
    assert "archived" not in new  # the copy is a live plan
    desired = load_repo(repo, RepoConfig())
    assert not desired.errors
    copy = desired.get("Plan", "openshift-mtv", "demo-plan-again")
    orig = desired.get("Plan", "openshift-mtv", "demo-plan")
    assert [v.model_dump() for v in copy.spec.vms] == [v.model_dump() for v in orig.spec.vms]
    assert copy.spec.map == orig.spec.map and copy.spec.provider == orig.spec.provider
    assert copy.spec.vms[0].hooks[0].hook.name == "note-before"


def test_a_copy_in_another_namespace_still_names_the_old_ones_objects(repo: Path) -> None:
    plan = repo / "plans" / "demo-plan.yaml"
    plan.write_text(plan.read_text().replace("      namespace: openshift-mtv\n", "", 1))
    made = duplicate_plan(repo, "openshift-mtv/demo-plan", "p2", namespace="team-b")
    doc = YAML(typ="safe").load(made.path.read_text())
    assert doc["metadata"] == {"name": "p2", "namespace": "team-b"}
    assert doc["spec"]["provider"]["source"] == {"name": "ova-files", "namespace": "openshift-mtv"}


def test_a_taken_name_or_a_missing_plan_is_refused(repo: Path) -> None:
    with pytest.raises(DuplicateError, match="a Plan openshift-mtv/demo-plan exists already"):
        duplicate_plan(repo, "demo-plan", "demo-plan")
    with pytest.raises(DuplicateError, match="no Plan nope"):
        duplicate_plan(repo, "nope", "x")


def test_the_cli_writes_the_copy_and_prints_the_commit_to_make(repo: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "plan", "duplicate", str(repo), "demo-plan"]
        + ["--name", "demo-plan-2", "--target-namespace", "other"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (repo / "plans" / "demo-plan-2.yaml").exists()
    assert f"git -C {repo} add plans/demo-plan-2.yaml" in proc.stdout
    assert "commit -m 'Plan openshift-mtv/demo-plan-2: duplicate of demo-plan'" in proc.stdout
