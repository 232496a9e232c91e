"""deploy/: what `kubectl kustomize deploy/` renders is valid Kubernetes (the API's own schemas,
strict: an unknown field fails), the RBAC is narrow, the Deployment runs a `daemon` command line
that the CLI accepts with its probes on the health port, and the image runs mtv-gitops."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from reconciler.cli.main import daemon
from reconciler.targets.schema import K8S_VERSION

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# the oldest Kubernetes the project targets and the newest whose schemas we have
VERSIONS = sorted({K8S_VERSION, kubernetes_validate.latest_version()})


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: `make test` installs it (Debian: kubernetes-client)")
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in YAML(typ="safe").load_all(out.stdout) if d)


def _objects(kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered() if o["kind"] == kind]


def _one(kind: str) -> dict[str, Any]:
    [obj] = _objects(kind)
    return obj


def _example_secret() -> dict[str, Any]:
    return YAML(typ="safe").load((DEPLOY / "git-credentials.example.yaml").read_text())


def _ids() -> Iterator[str]:
    return (f"{o['kind']}/{o['metadata']['name']}" for o in rendered())


def test_kustomize_renders_every_part() -> None:
    kinds = sorted(o["kind"] for o in rendered())
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    namespaced = [o for o in rendered() if o["kind"] not in ("Namespace", "ClusterRole")]
    namespaced = [o for o in namespaced if o["kind"] != "ClusterRoleBinding"]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"mtv-gitops"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_passes_the_kubernetes_schema(version: str) -> None:
    for obj in [*rendered(), _example_secret()]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except jsonschema.ValidationError as exc:  # kubernetes_validate's, or from a $ref
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {where}: {exc.message}")


def test_rbac_has_no_wildcards_and_secrets_and_leases_stay_in_our_namespace() -> None:
    roles = _objects("ClusterRole") + _objects("Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"]["name"], rule)
            assert not rule.get("nonResourceURLs"), rule
    cluster = [r for r in _one("ClusterRole")["rules"]]
    assert not [r for r in cluster if "leases" in r["resources"]]
    # Secrets: written for the transfer Jobs, but never read beyond our own namespace
    for rule in [r for r in cluster if "secrets" in r["resources"]]:
        assert not {"get", "list", "watch"} & set(rule["verbs"]), rule
    granted = {
        (g, res, v)
        for r in cluster
        for g in r["apiGroups"]
        for res in r["resources"]
        for v in r["verbs"]
    }
    assert ("kubevirt.io", "virtualmachines", "create") in granted
    assert ("", "configmaps", "create") in granted  # hook Jobs' inputs
    assert ("k8s.cni.cncf.io", "network-attachment-definitions", "get") in granted
    assert not [g for g in granted if g[2] in ("escalate", "bind", "impersonate")]
    role = _one("Role")
    assert role["metadata"]["namespace"] == "mtv-gitops"
    [secrets] = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets["verbs"] == ["get"]
    for binding in _objects("RoleBinding") + _objects("ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "mtv-gitops", "namespace": "mtv-gitops"}
        ]


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _daemon_args() -> list[str]:
    """The container's arguments with $(VAR) filled in from the ConfigMap, as the kubelet does."""
    data = _one("ConfigMap")["data"]
    env = {}
    for var in _container()["env"]:
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        env[var["name"]] = data[ref["key"]] if ref else var.get("value", "")
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in _container()["args"]]


def test_the_deployment_runs_a_daemon_command_line_the_cli_accepts() -> None:
    args = _daemon_args()
    assert args[0] == "daemon"
    ctx = daemon.make_context("daemon", args[1:])  # parses and checks every option
    params = ctx.params
    assert params["repo"] == _one("ConfigMap")["data"]["repo"]
    assert params["leader_elect"] is True
    assert params["health_address"] == "0.0.0.0"
    # the Lease the daemon renews is the one the Role lets it renew
    [named] = [r for r in _one("Role")["rules"] if r.get("resourceNames")]
    assert named["resourceNames"] == [params["lease_name"]]
    assert _one("Deployment")["spec"]["replicas"] == 2


def test_probes_and_service_point_at_the_health_port() -> None:
    port = int(_daemon_args()[_daemon_args().index("--health-port") + 1])
    container = _container()
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        assert named.get(get["port"], get["port"]) == port
    [svc_port] = _one("Service")["spec"]["ports"]
    assert named.get(svc_port["targetPort"], svc_port["targetPort"]) == port
    pod_labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _one("Service")["spec"]["selector"].items() <= pod_labels.items()


def test_the_pod_is_locked_down_and_its_volumes_fit() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert mounts["state"] == env["MTV_GITOPS_STATE"]
    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == _one("PersistentVolumeClaim")["metadata"]["name"]
    assert mounts["git-credentials"] == env["MTV_GITOPS_GIT_CREDENTIALS"]
    secret = volumes["git-credentials"]["secret"]
    assert secret["secretName"] == _example_secret()["metadata"]["name"]
    assert "tmp" in mounts  # the writable scratch space beside a read-only root


def test_the_example_secret_shows_both_methods_with_placeholders_only() -> None:
    secret = _example_secret()
    data = secret["stringData"]
    assert {"username", "password", "ssh-privatekey", "known_hosts"} <= set(data)
    assert "REPLACE" in data["password"] and "REPLACE" in data["ssh-privatekey"]
    assert secret["metadata"]["namespace"] == "mtv-gitops"
    kustomization = YAML(typ="safe").load((DEPLOY / "kustomization.yaml").read_text())
    assert "git-credentials.example.yaml" not in kustomization["resources"]


def _containerfile_final_stage() -> list[tuple[str, str]]:
    """(instruction, argument) of the last stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        stages[-1].append((word.upper(), rest.strip()))
    return stages[-1]


def test_the_image_runs_mtv_gitops_as_the_deployments_non_root_user() -> None:
    stage = _containerfile_final_stage()
    [entrypoint] = [arg for word, arg in stage if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["mtv-gitops"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "mtv-gitops" in scripts
    [user] = [arg for word, arg in stage if word == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0
    assert _one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    installs = " ".join(arg for word, arg in stage if word == "RUN" and "apt-get" in arg)
    packages = set(shlex.split(installs))
    assert {"qemu-utils", "git", "openssh-client"} <= packages


def test_object_ids_are_unique() -> None:
    ids = list(_ids())
    assert len(ids) == len(set(ids))
