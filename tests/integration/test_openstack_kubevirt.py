"""OpenStack servers cold-migrated onto a KubeVirt cluster (kmock's emulator, the tests'
kubelet running each Job's pod as a local process), against real Keystone and Glance: each
volume is downloaded from Glance by its transfer Job, which logs in to Keystone with the
Provider's credentials by reference (``secretKeyRef``); the snapshot, volume and image it reads
are made by the reconciler before the Job and deleted after success, failure and cancel."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.plugin_manager import connect
from reconciler.secrets.resolver import env_name
from testpeers.openstack.cloud import Cloud
from tests.support.cluster import TOKEN, Cluster, Kubelet
from tests.support.openstack_repo import openstack_repo
from tests.support.workspace import CLI, small_vm, wait_until

pytestmark = pytest.mark.integration
NS = "os-vms"


@pytest.fixture
def cloud(openstack_cloud: Cloud) -> Iterator[Cloud]:
    """The shared cloud, its servers put back as seeded afterwards (web on, db off)."""
    yield openstack_cloud
    s, seeded = openstack_cloud.standins, openstack_cloud.extra["seed"]
    conn = connect("openstack", openstack_cloud.auth_url, openstack_cloud.secret(), {})
    try:  # a test that failed midway leaves no temporaries to the next
        for name in ("web", "db"):
            conn.release(seeded[name]["id"])
    finally:
        conn.close()
    s.fail_uploads = False
    s.set_status(seeded["web"]["id"], "ACTIVE")
    s.set_status(seeded["db"]["id"], "SHUTOFF")


def leftovers(cloud: Cloud) -> list[str]:
    conn = connect("openstack", cloud.auth_url, cloud.secret(), {})
    try:
        return conn.temporaries()
    finally:
        conn.close()


def onto_cluster(ws, cloud: Cloud, cluster: Cluster, tmp_path: Path, **kw) -> dict[str, str]:
    """The OpenStack plan with its destination Provider on the cluster; the environment for
    the reconciler (the Keystone login and the cluster's token in a secrets file)."""
    env = openstack_repo(ws, cloud, tmp_path, **kw)
    yaml = YAML(typ="rt")
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(yaml.load_all(path.read_text()))
    assert docs[1]["spec"]["type"] == "openshift"
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1", "transferRetries": "0"}
    out = io.StringIO()
    yaml.dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "migrate to the cluster")
    secrets = Path(env["MTV_GITOPS_SECRETS"])
    doc = json.loads(secrets.read_text())
    doc["openshift-mtv/cluster-token"] = {"token": TOKEN}
    secrets.write_text(json.dumps(doc))
    return env


def vms_of(ws) -> dict[str, dict]:
    plan = ws.status("plan", "os-plan")["status"]
    return {v["name"]: v for v in plan["migration"]["vms"]}


def test_each_volume_is_downloaded_by_a_transfer_job(
    workspace_factory, cloud: Cloud, cluster: Cluster, kubelet: Kubelet, tmp_path
) -> None:
    ws = workspace_factory([small_vm("steady", 1)])
    env = onto_cluster(ws, cloud, cluster, tmp_path)
    before: dict[str, list[str]] = {}

    def made_before(job: dict) -> bool:  # what the cloud holds as each Job's pod starts
        before[job["metadata"]["name"]] = leftovers(cloud)
        return True

    kubelet.before_run = made_before
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {n: v["phase"] for n, v in vms_of(ws).items()} == {"web": "Completed", "db": "Completed"}

    seeded = cloud.extra["seed"]
    runs = [r for r in kubelet.runs if r.job.endswith("-xfer") and not r.job.startswith("steady")]
    assert sorted(r.job for r in runs) == ["db-disk-0-xfer", "web-disk-0-xfer", "web-disk-1-xfer"]
    assert all(r.returncode == 0 for r in runs), [r.message for r in runs]
    # the credentials reach the pod by reference only, never on its command line
    keys = [env_name("openshift-mtv", "openstack-creds", k) for k in ("username", "password")]
    password = cloud.secret()["password"]
    for r in runs:
        assert all(r.env.get(k) for k in keys), sorted(r.env)
        assert password not in " ".join(r.argv)
    for secret in cluster.list(f"/api/v1/namespaces/{NS}/secrets"):
        assert secret["metadata"]["name"].endswith("-xfer")  # the Jobs' own, never the user's
    # the reconciler made every temporary of the server before its Jobs started
    for name, vols in seeded["volumes"].items():
        for i, vol in enumerate(vols):
            made = before[f"{name}-disk-{i}-xfer"]
            tag = f"{seeded[name]['id']}-{vol['id']}"
            assert {f"{kind} mtv-gitops-{tag}" for kind in ("image", "snapshot", "volume")} <= set(
                made
            ), made
            disk = kubelet.storage(NS, f"{name}-disk-{i}") / "disk.img"
            same = subprocess.run(["cmp", "-s", str(disk), str(cloud.standins.path(vol["id"]))])
            assert same.returncode == 0, disk
            assert disk.stat().st_blocks * 512 < 16 * 1024 * 1024, "holes were written"
    assert leftovers(cloud) == []
    assert cluster.names(f"/apis/batch/v1/namespaces/{NS}/jobs") == []
    vm = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/web")
    assert vm["spec"]["runStrategy"] == "Always"
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert [i["macAddress"] for i in domain["devices"]["interfaces"]] == [
        "fa:16:3e:00:00:01",
        "fa:16:3e:00:00:02",
    ]


def test_a_failed_job_leaves_no_temporaries(
    workspace_factory, cloud: Cloud, cluster: Cluster, kubelet: Kubelet, tmp_path
) -> None:
    ws = workspace_factory([small_vm("steady", 1)])
    env = onto_cluster(ws, cloud, cluster, tmp_path)
    missing = tmp_path / "no-such-folder" / "disk.img"
    kubelet.redirect[(NS, "db-disk-0", "disk.img")] = missing
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    db = vms_of(ws)["db"]
    assert db["phase"] == "Failed"
    errors = cloud.standins.upload_errors
    assert "transfer Job os-vms/db-disk-0-xfer failed" in json.dumps(db["error"]), errors
    assert leftovers(cloud) == []


def _start(ws, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state), "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", **env}, start_new_session=True,
    )  # fmt: skip


def test_a_killed_reconciler_then_a_cancel_leave_no_temporaries(
    workspace_factory, cloud: Cloud, cluster: Cluster, kubelet: Kubelet, tmp_path
) -> None:
    """The reconciler is killed while a Job downloads: the temporaries stay for the Job; the
    next pass finds the Job again, the VM is canceled, and the temporaries go with it."""
    ws = workspace_factory([small_vm("steady", 1)])
    env = onto_cluster(ws, cloud, cluster, tmp_path, mib_per_s=0.5)
    started = []
    kubelet.before_run = lambda job: started.append(job["metadata"]["name"]) or True
    ours = ("web-", "db-")  # the workspace's own OVA VM goes to the cluster too
    first = _start(ws, env)
    try:
        wait_until(
            lambda: any(n.startswith(ours) for n in started),
            timeout=600,
            why=lambda: str(first.poll()),
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    left = leftovers(cloud)
    assert any(x.startswith("image ") for x in left), left
    plan = (ws.clone / "plans" / "os-plan.yaml").read_text()  # its Migration is last
    cancel = plan.rstrip("\n") + "\n  cancel:\n    - name: web\n    - name: db\n"
    ws.user_commit({"plans/os-plan.yaml": cancel}, "cancel the OpenStack VMs")
    proc = ws.reconcile("--once", env=env, timeout=600)
    phases = {n: v["phase"] for n, v in vms_of(ws).items()}
    copying = next(n for n in started if n.startswith(ours)).split("-")[0]
    assert phases[copying] == "Canceled", proc.stdout + proc.stderr
    # the other VM may have ended Failed in the killed pass already (an upload into Glance on
    # sqlite can fail under load): then its own failure deleted what it made
    assert set(phases.values()) <= {"Canceled", "Failed"}, phases
    assert leftovers(cloud) == []
