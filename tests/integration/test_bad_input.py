"""Bad input: a clear message in the CLI and in status, nothing half-done, other plans go on."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.workspace import migration_yaml, plan_yaml, small_vm

pytestmark = pytest.mark.integration

BROKEN_PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata:
  name: broken-plan
  namespace: openshift-mtv
spec:
  targetNamespace: other-vms
  vms: [ {name: x}
"""


def test_a_malformed_file_stops_nothing_else(workspace_factory) -> None:
    ws = workspace_factory([small_vm("steady", 1)])
    ws.user_commit(
        {
            "plans/broken.yaml": BROKEN_PLAN,
            "plans/typo.yaml": plan_yaml("typo-plan", ["steady"], "typo-vms").replace(
                "targetNamespace", "targetNamespaces"
            ),
            "plans/dangling.yaml": plan_yaml("dangling-plan", ["steady"], "d-vms").replace(
                "name: ova-networks", "name: no-such-map"
            ),
            "misc/unknown.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            "plans/dup.yaml": plan_yaml("demo-plan", ["steady"]),
        },
        "several mistakes",
    )
    lint = ws.cli("lint", str(ws.clone))
    assert lint.returncode == 1
    out = lint.stdout
    assert "plans/broken.yaml:9:1: malformed YAML: expected ',' or ']'" in out
    assert "plans/typo.yaml:7:3: unknown field 'spec.targetNamespaces'" in out
    assert "plans/typo.yaml:6:1: missing required field 'spec.targetNamespace'" in out
    assert "misc/unknown.yaml:2:1: unknown kind 'ConfigMap'" in out
    assert (
        "plans/dup.yaml:4:3: duplicate Plan openshift-mtv/demo-plan: already defined at "
        "plans/demo-plan.yaml:1:1" in out
    )
    assert (
        "plans/dangling.yaml:12:5: spec.map.network refers to NetworkMap "
        "openshift-mtv/no-such-map, which does not exist" in out
    )

    proc = ws.reconcile("--once")
    assert proc.returncode == 1  # errors are reported ...
    plan = ws.status("plan", "demo-plan")["status"]  # ... and the good plan still ran
    assert [v["phase"] for v in plan["migration"]["vms"]] == ["Completed"]
    repo_status = ws.remote_file("status/repo.yaml")
    assert "plans/broken.yaml:9:" in repo_status
    assert "unknown kind 'ConfigMap'" in repo_status
    dangling = ws.status("plan", "dangling-plan")["status"]
    assert dangling["conditions"][0]["type"] == "RefNotValid"
    assert "no-such-map" in dangling["conditions"][0]["message"]
    typo = ws.status("plan", "typo-plan")["status"]
    assert typo["conditions"][0]["category"] == "Critical"
    assert "targetNamespaces" in typo["conditions"][0]["message"]


def test_plaintext_secret_is_refused(workspace_factory) -> None:
    ws = workspace_factory([small_vm("calm", 2)])
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: vcenter, namespace: openshift-mtv}\n"
        "stringData:\n  user: admin\n  password: hunter2-not-real\n"
    )
    ws.user_commit({"secrets/vcenter.yaml": secret}, "oops, a secret")
    lint = ws.cli("lint", str(ws.clone))
    assert lint.returncode == 1
    assert "secrets/vcenter.yaml:2:1: plaintext Secret in the repo" in lint.stdout
    assert "hunter2" not in lint.stdout
    ws.reconcile("--once")
    assert "hunter2" not in ws.remote_file("status/repo.yaml")


def test_secret_values_never_reach_status(workspace_factory, tmp_path) -> None:
    ws = workspace_factory([small_vm("shy", 3)])
    providers = (ws.clone / "providers" / "providers.yaml").read_text()
    ws.user_commit(
        {
            "providers/providers.yaml": providers.replace(
                "  type: ova\n", "  type: ova\n  secret:\n    name: ova-creds\n"
            )
        },
        "the OVA share needs credentials",
    )
    proc = ws.reconcile("--once")  # no secrets file: the provider is not ready, clearly
    assert proc.returncode == 1
    prov = ws.status("provider", "ova-files")["status"]["conditions"]
    assert prov[-1]["type"] == "ConnectionFailed"
    assert "secret openshift-mtv/ova-creds not found" in prov[-1]["message"]
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("openshift-mtv/ova-creds:\n  user: reader\n  password: s3cr3t-value\n")
    proc = ws.reconcile("--once", env={"MTV_GITOPS_SECRETS": str(secrets)})
    assert proc.returncode == 0, proc.stdout
    everything = subprocess.run(
        ["git", "-C", str(ws.remote), "log", "-p", "--all"], capture_output=True, text=True
    ).stdout
    assert "s3cr3t-value" not in everything and "s3cr3t-value" not in proc.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_target_without_enough_free_space(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("too-big", 1, data_mib=40, capacity_mib=128), small_vm("fits", 2, data_mib=4)]
    )
    ws.cluster.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(ws.cluster)])
    if mount.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        proc = ws.reconcile("--once")
        assert proc.returncode == 1
        printed = proc.stdout.replace("\n", " ")
        assert "VM too-big failed in AllocateDisks: not enough free space" in printed
        plan = ws.status("plan", "demo-plan")["status"]
        vms = {v["name"]: v for v in plan["migration"]["vms"]}
        big = vms["too-big"]
        assert big["phase"] == "Failed"
        assert big["error"]["phase"] == "AllocateDisks"
        assert "not enough free space" in big["error"]["reasons"][0]
        steps = {s["name"]: s["phase"] for s in big["pipeline"]}
        assert steps["CopyDisks"] == "Pending" and steps["CreateVM"] == "Pending"
        assert not (ws.cluster / "demo-vms" / "virtualmachines" / "too-big.yaml").exists()
        assert vms["fits"]["phase"] == "Completed"
    finally:
        subprocess.run(["umount", str(ws.cluster)])


def test_two_migrations_of_one_plan_run_one_at_a_time(workspace_factory) -> None:
    ws = workspace_factory([small_vm("solo", 4)])
    ws.user_commit(
        {"migrations/demo-plan-0.yaml": migration_yaml("demo-plan-0", "demo-plan")},
        "a second migration",
    )
    ws.reconcile("--once", check=True)
    plan = ws.status("plan", "demo-plan")["status"]
    assert [h["migration"]["name"] for h in plan["migration"]["history"]] == ["demo-plan-0"]
    waiting = ws.status("migration", "demo-plan-1")["status"]["conditions"][0]
    assert waiting["type"] == "Pending"
    ws.reconcile("--once", check=True)
    done = ws.status("migration", "demo-plan-1")["status"]["conditions"][0]
    assert done["type"] == "Succeeded"


def test_truncated_disk_in_an_ova_is_named_in_cli_and_status(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("cut-short", 1), small_vm("whole", 2)],
        **{"cut-short": {"truncate_disks": {0: 20_000}}},
    )
    proc = ws.reconcile("--once")
    assert proc.returncode == 1
    printed = proc.stdout.replace("\n", " ")
    assert "plan openshift-mtv/demo-plan not ready: VMSourceNotValid" in printed
    assert "cut-short-disk1.vmdk" in printed
    cond = {c["type"]: c for c in ws.status("plan", "demo-plan")["status"]["conditions"]}
    assert "cut-short" in cond["VMSourceNotValid"]["message"]
    assert "cut-short-disk1.vmdk" in cond["VMSourceNotValid"]["message"]
    assert not (ws.cluster / "demo-vms").exists()
