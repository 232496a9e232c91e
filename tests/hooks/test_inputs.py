"""plan.yml and workload.yml in the shapes Forklift's hook-runner gets (yaml.v2 of Go structs)."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from reconciler.hooks.inputs import dump, plan_document, workload_document
from reconciler.hooks.model import Hook, decode_playbook
from reconciler.manifests.config import RepoConfig
from reconciler.manifests.loader import load_repo
from tests.support.hooks import PLAN


def _plan_spec(tmp_path: Path):
    (tmp_path / "plan.yaml").write_text(PLAN)
    desired = load_repo(tmp_path, RepoConfig())
    return desired.get("Plan", "openshift-mtv", "plan2j").spec


def test_plan_yml_is_the_spec_with_go_field_names(tmp_path: Path) -> None:
    plan = YAML(typ="safe").load(dump(plan_document(_plan_spec(tmp_path))))
    assert "metadata" not in plan  # Forklift marshals Plan.Spec only
    assert plan["targetnamespace"] == "web"
    assert plan["description"] == "move the web tier"
    assert plan["provider"]["source"]["name"] == "vcenter"
    assert plan["provider"]["source"]["namespace"] == "openshift-mtv"
    assert plan["map"]["network"]["name"] == "net"
    assert plan["warm"] is False and plan["archived"] is False
    assert plan["transfernetwork"] is None
    (vm,) = plan["vms"]
    assert vm["ref"]["id"] == "vm-3696"
    assert vm["hooks"] == [
        {
            "step": "PreHook",
            "hook": {
                "kind": "",
                "namespace": "openshift-mtv",
                "name": "playbook",
                "uid": "",
                "apiversion": "",
                "resourceversion": "",
                "fieldpath": "",
            },
        }
    ]


def test_workload_yml_nests_the_vm_as_forklift_does() -> None:
    doc = {
        "id": "vm-3696",
        "name": "web-01",
        "path": "/dc/vm/web-01",
        "revisionValidated": 3,
        "powerState": "poweredOn",
        "ipAddress": "10.0.0.7",
        "memoryMB": 2048,
        "disks": [{"key": 2000, "capacity": 1024, "datastore": {"id": "ds-1"}}],
        "host": {"id": "host-21", "name": "esx-1", "cluster": {"id": "c-7", "name": "prod"}},
    }
    workload = YAML(typ="safe").load(dump(workload_document(doc, "vsphere", "vcenter")))
    assert workload["vm"]["vm1"]["vm0"]["name"] == "web-01"
    assert workload["vm"]["vm1"]["vm0"]["id"] == "vm-3696"
    assert workload["vm"]["vm1"]["powerstate"] == "poweredOn"
    assert workload["vm"]["vm1"]["host"] == "host-21"
    assert workload["vm"]["ipaddress"] == "10.0.0.7"
    assert workload["vm"]["memorymb"] == 2048
    assert workload["vm"]["vm1"]["disks"][0]["datastore"]["id"] == "ds-1"
    assert workload["host"]["host"]["name"] == "esx-1"
    assert workload["host"]["cluster"]["cluster"]["name"] == "prod"
    assert workload["selflink"].endswith("/workloads/vm-3696")


def test_the_playbook_is_base64_and_the_runner_image_is_known_by_name() -> None:
    assert decode_playbook("LSBob3N0czogbG9jYWxob3N0Cg==\n") == "- hosts: localhost\n"
    assert Hook("ns", "h").runner_image
    assert Hook("ns", "h", image="quay.io/konveyor/hook-runner:nmcli").runner_image
    assert not Hook("ns", "h", image="registry.example.com/tools/dnf-hook:1").runner_image


def test_a_playbook_that_is_not_base64_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "hook.yaml").write_text(
        "apiVersion: forklift.konveyor.io/v1beta1\nkind: Hook\n"
        "metadata: {name: raw, namespace: openshift-mtv}\n"
        "spec:\n  playbook: '- hosts: localhost'\n  deadline: 60\n"
    )
    desired = load_repo(tmp_path, RepoConfig())
    (error,) = desired.errors
    assert error.location.file == "hook.yaml"
    assert "base64 -w0 playbook.yml" in error.message
