"""``mtv-gitops gather``: a must-gather archive laid out as MTV's, from a real migration onto
the emulated KubeVirt cluster; every secret value the reconciler knows is redacted wherever
it was planted; a filter that matches nothing writes no archive."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import urllib.parse
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.progress.store import ProgressStore
from tests.support.cluster import TOKEN, Cluster
from tests.support.workspace import Workspace, small_vm

pytestmark = pytest.mark.integration
NS = "demo-vms"  # the plan's target namespace
PASSWORD = 'S3cr3t/Pa55+w0rd!"x'


def to_cluster(ws: Workspace, cluster: Cluster) -> dict[str, str]:
    """Point the destination Provider at the emulated cluster (a user commit); the secrets
    file with its token, for the reconciler's environment."""
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(YAML(typ="rt").load_all(path.read_text()))
    assert docs[1]["spec"]["type"] == "openshift"
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1"}
    out = io.StringIO()
    YAML(typ="rt").dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "migrate to the cluster")
    secrets = ws.root / "secrets.yaml"
    secrets.write_text(f"openshift-mtv/cluster-token:\n  token: {TOKEN}\n")
    return {"MTV_GITOPS_SECRETS": str(secrets)}


def _unpack(archive: Path, where: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return {
        str(p.relative_to(where)): p.read_text() for p in sorted(where.rglob("*")) if p.is_file()
    }


def _plant(ws, cluster, vm_id: str) -> None:
    """The secret values everywhere they could leak into a bundle."""
    # the reconciler's log: an error quoting them, raw and URL-encoded
    log = ws.state / "logs" / "reconciler.log"
    for text in (PASSWORD, urllib.parse.quote(PASSWORD, safe=""), TOKEN):
        line = {
            "time": "2030-01-01T00:00:00.000Z",
            "level": "warning",
            "logger": "test",
            "message": f"login refused for {text}",
            "plan": "openshift-mtv/demo-plan",
            "vm_id": vm_id,
        }
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")
    # the progress store: a failure reason that quotes the password
    store = ProgressStore(ws.state / "progress.db")
    rec = store.get_vm("openshift-mtv/demo-plan", vm_id)
    rec.error = {"phase": "CopyDisks", "reasons": [f"auth {PASSWORD} rejected"]}
    store.put_vm(rec)
    store.close()
    # the status the reconciler committed (its private checkout)
    status = ws.state / "checkout" / "status" / "plan" / "openshift-mtv" / "demo-plan.yaml"
    status.write_text(status.read_text() + f"# token was {TOKEN}\n")
    # the cluster: a Job whose env holds the token base64-encoded, a pod that logs both
    labels = {"plan": "demo-plan", "vmID": vm_id}
    env = [{"name": "TOKEN_B64", "value": base64.b64encode(TOKEN.encode()).decode()}]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "leaky-hook", "namespace": NS, "labels": labels},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}},
    }
    cluster.create(f"/apis/batch/v1/namespaces/{NS}/jobs", job)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "leaky-hook-abcde", "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "c"}]},
    }
    cluster.create(f"/api/v1/namespaces/{NS}/pods", pod)
    cluster.logs[(NS, "leaky-hook-abcde")] = f"using {PASSWORD} and {json.dumps(PASSWORD)}\n"


def test_gather_lays_out_and_redacts(workspace_factory, cluster, kubelet, tmp_path) -> None:
    ws = workspace_factory([small_vm("web-1", 1), small_vm("db-2", 2)])
    env = to_cluster(ws, cluster)
    secrets = Path(env["MTV_GITOPS_SECRETS"])
    secrets.write_text(secrets.read_text() + f"openshift-mtv/extra:\n  password: '{PASSWORD}'\n")
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    store = ProgressStore(ws.state / "progress.db")
    ids = {v.vm_name: v.vm_id for v in store.vms("openshift-mtv/demo-plan")}
    store.close()
    kubelet.stop()  # the planted Job is never run
    _plant(ws, cluster, ids["web-1"])

    out = tmp_path / "bundle.tar.gz"
    args = ["gather", str(ws.clone), "--state-dir", str(ws.state), "--cluster", str(ws.cluster)]
    proc = ws.cli(*args, "--plan", "openshift-mtv/demo-plan", "-o", str(out), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = _unpack(out, tmp_path / "unpacked")

    # MTV's layout: per namespace, crs/<kind>/<name>.yaml and logs/<pod>/current.log
    mtv, target = "must-gather/namespaces/openshift-mtv", f"must-gather/namespaces/{NS}"
    plan = files[f"{mtv}/crs/plan/demo-plan.yaml"]
    assert "kind: Plan" in plan and "status:" in plan and "phase: Completed" in plan
    assert f"{mtv}/crs/migration/demo-plan-1.yaml" in files
    assert f"{mtv}/crs/provider/ova-files.yaml" in files
    assert not any("/crs/secret/" in p for p in files)
    assert f"{mtv}/progress/demo-plan/vms/{ids['web-1']}.yaml" in files
    assert f"{mtv}/progress/demo-plan/migrations.yaml" in files
    assert any(p.startswith(f"{mtv}/inventory/ova-files/") for p in files)
    assert "web-1" in files[f"{mtv}/logs/mtv-gitops-reconciler/current.log"]
    for kind in ("persistentvolumeclaim", "virtualmachine", "job", "pod"):
        assert any(p.startswith(f"{target}/crs/{kind}/") for p in files), kind
    assert f"{target}/crs/virtualmachine/web-1.yaml" in files
    assert f"{target}/logs/leaky-hook-abcde/current.log" in files
    assert all(text.strip() for text in files.values())  # empty logs are left out

    # no planted value survives, in any encoding
    leaks = [PASSWORD, TOKEN, base64.b64encode(TOKEN.encode()).decode()]
    leaks += [urllib.parse.quote(PASSWORD, safe=""), json.dumps(PASSWORD)[1:-1]]
    found = [(p, v) for p, text in files.items() for v in leaks if v in text]
    assert found == []
    assert "<redacted>" in files[f"{target}/logs/leaky-hook-abcde/current.log"]
    assert "<redacted>" in files[f"{mtv}/progress/demo-plan/vms/{ids['web-1']}.yaml"]

    # one VM: the other VM's objects and records stay out
    one = tmp_path / "one.tar.gz"
    proc = ws.cli(*args, "--vm", "db-2", "-o", str(one), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = _unpack(one, tmp_path / "one")
    assert f"{target}/crs/virtualmachine/db-2.yaml" in files
    assert f"{target}/crs/virtualmachine/web-1.yaml" not in files
    assert f"{mtv}/progress/demo-plan/vms/{ids['web-1']}.yaml" not in files


def test_a_filter_that_matches_nothing_writes_no_archive(workspace_factory, tmp_path) -> None:
    ws = workspace_factory([small_vm("web-1", 1)])
    assert ws.reconcile("--once").returncode == 0
    out = tmp_path / "none.tar.gz"
    args = ["gather", str(ws.clone), "--state-dir", str(ws.state), "-o", str(out)]
    for extra in (["--plan", "openshift-mtv/nope"], ["--vm", "no-such-vm"], ["--namespace", "x"]):
        proc = ws.cli(*args, *extra)
        assert proc.returncode == 1 and "nothing matches" in proc.stderr, proc.stderr
        assert not out.exists() and not list(tmp_path.glob("*.part"))
    proc = ws.cli(*args, "--since", "soon")
    assert proc.returncode == 1 and "--since" in proc.stderr
