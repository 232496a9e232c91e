"""Cold migration from OVA files to a KubeVirt cluster: the destination Provider points at
kmock's KubernetesEmulator with a service account token, and the test plays the kubelet for
the transfer Jobs (tests/targets/cluster.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.transfer.digest import disk_digest_of_file
from tests.support.cluster import TOKEN, Cluster, Kubelet, to_cluster
from tests.support.workspace import Workspace, migration_yaml, small_vm

pytestmark = pytest.mark.integration
NS = "demo-vms"


def vms_of(ws: Workspace) -> dict[str, dict]:
    plan = ws.status("plan", "demo-plan")["status"]
    return {v["name"]: v for v in plan["migration"]["vms"]}


def test_cold_migration_to_a_kubevirt_cluster(workspace_factory, cluster, kubelet) -> None:
    ws = workspace_factory(
        [
            small_vm("Web_Server 01", 1),
            small_vm("db-two-disks", 2, disks=2, nics=("VM Network", "backend")),
        ]
    )
    env = to_cluster(ws, cluster)
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    vms = vms_of(ws)
    assert {v["phase"] for v in vms.values()} == {"Completed"}
    copy = {s["name"]: s for s in vms["db-two-disks"]["pipeline"]}["CopyDisks"]
    assert [t["verified"] for t in copy["tasks"]] == [True, True]
    host = ws.status("provider", "host")["status"]["conditions"]
    assert host[-1]["message"] == f"Target: KubeVirt cluster at {cluster.url}."

    ns = cluster.get(f"/api/v1/namespaces/{NS}")
    assert ns["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "mtv-gitops"}
    pvcs = {
        p["metadata"]["name"]: p
        for p in cluster.list(f"/api/v1/namespaces/{NS}/persistentvolumeclaims")
    }
    assert sorted(pvcs) == ["db-two-disks-disk-0", "db-two-disks-disk-1", "web-server01-disk-0"]
    for p in pvcs.values():
        assert p["spec"]["storageClassName"] == "standard"  # from the StorageMap
        assert p["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert p["spec"]["volumeMode"] == "Filesystem"
        assert p["spec"]["resources"]["requests"]["storage"] == "68Mi"  # 64 MiB + overhead
        labels = p["metadata"]["labels"]
        assert labels["plan"] == "demo-plan" and labels["migration"] == "demo-plan-1"
        assert labels["vmID"] and labels["vmDisk"]

    vm = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/db-two-disks")
    assert vm["metadata"]["labels"]["migration"] == "demo-plan-1"
    spec = vm["spec"]["template"]["spec"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]] == [
        "db-two-disks-disk-0",
        "db-two-disks-disk-1",
    ]
    assert [i["macAddress"] for i in spec["domain"]["devices"]["interfaces"]] == [
        "00:50:56:01:02:00",
        "00:50:56:01:02:01",
    ]
    assert spec["networks"] == [
        {"name": "net-0", "pod": {}},
        {"name": "net-1", "multus": {"networkName": "demo-vms/backend-net"}},
    ]
    assert vm["spec"]["runStrategy"] == "Halted"  # the OVA VMs were off
    assert cluster.names(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines") == [
        "db-two-disks",
        "web-server01",
    ]
    assert cluster.names(f"/apis/batch/v1/namespaces/{NS}/jobs") == []  # done, removed

    # each PVC was filled by its own Job, byte for byte; then each VM's conversion Job ran
    # with all its PVCs (the synthetic disks hold no OS: nothing to convert, and it says so)
    assert sorted(r.job for r in kubelet.runs) == [
        "db-two-disks-disk-0-xfer",
        "db-two-disks-disk-1-xfer",
        "demo-plan-db-two-disks-convert",
        "demo-plan-web-server01-convert",
        "web-server01-disk-0-xfer",
    ]
    convert = {s["name"]: s for s in vms["db-two-disks"]["pipeline"]}["ConvertGuest"]
    assert convert["phase"] == "Skipped"
    assert "holds no operating system" in convert["message"]
    run = next(r for r in kubelet.runs if r.job == "demo-plan-db-two-disks-convert")
    assert run.argv[3:6] == ["convert-guest", "--name", "db-two-disks"]
    assert run.argv.count("--disk") == 2  # every PVC of the VM, in order
    assert run.env.get("MTV_GITOPS_FORCE_TCG") == "1"  # no node offers devices.kubevirt.io/kvm
    for name, info in ws.ovas.items():
        target = "web-server01" if name == "Web_Server 01" else name
        for i, disk in enumerate(info.disks):
            image = kubelet.storage(NS, f"{target}-disk-{i}") / "disk.img"
            assert disk_digest_of_file(image) == disk.digest
    assert {r.headers.get("Authorization") for r in cluster.requests()} == {f"Bearer {TOKEN}"}

    assert ws.reconcile("--once", env=env).returncode == 0
    assert len(kubelet.runs) == 5  # nothing copied (or converted) twice


def test_a_failed_job_is_retried_then_reported(workspace_factory, cluster, kubelet) -> None:
    ws = workspace_factory([small_vm("vm-a", 1)])
    env = to_cluster(ws, cluster, retries=1)
    missing = ws.root / "no-such-folder" / "disk.img"
    kubelet.redirect[(NS, "vm-a-disk-0", "disk.img")] = missing
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    vm = vms_of(ws)["vm-a"]
    assert vm["phase"] == "Failed"
    (reason,) = vm["error"]["reasons"]
    assert reason.startswith(f"transfer Job {NS}/vm-a-disk-0-xfer failed after 2 attempt(s): ")
    assert f"{missing}" in reason and "No such file or directory" in reason
    assert [r.returncode for r in kubelet.runs] == [1, 1]  # transferRetries 1: two pods

    # the fault is fixed and a new Migration runs the VM again: its Job is made afresh
    del kubelet.redirect[(NS, "vm-a-disk-0", "disk.img")]
    ws.user_commit(
        {"migrations/demo-plan-2.yaml": migration_yaml("demo-plan-2", "demo-plan")}, "again"
    )
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert vms_of(ws)["vm-a"]["phase"] == "Completed"
    image = kubelet.storage(NS, "vm-a-disk-0") / "disk.img"
    assert disk_digest_of_file(image) == ws.ovas["vm-a"].disks[0].digest


def test_a_pvc_or_vm_deleted_by_hand_is_noticed(workspace_factory, cluster, kubelet) -> None:
    ws = workspace_factory([small_vm("vm-a", 1)])
    env = to_cluster(ws, cluster)

    def delete_the_pvc_once(job: dict) -> bool:
        kubelet.before_run = None
        kubelet.delete_pvc_by_hand(NS, "vm-a-disk-0")
        return False

    kubelet.before_run = delete_the_pvc_once
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vm = vms_of(ws)["vm-a"]
    assert vm["phase"] == "Completed"
    (task,) = {s["name"]: s for s in vm["pipeline"]}["CopyDisks"]["tasks"]
    assert task["annotations"]["recreated"] == (
        f"PVC {NS}/vm-a-disk-0 was missing: re-created, copy restarted"
    )
    image = kubelet.storage(NS, "vm-a-disk-0") / "disk.img"
    assert disk_digest_of_file(image) == ws.ovas["vm-a"].disks[0].digest

    # a completed VM deleted by hand is reported, not silently migrated again
    cluster.delete(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/vm-a")
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    conds = {c["type"]: c for c in ws.status("plan", "demo-plan")["status"]["conditions"]}
    missing = conds["TargetVMMissing"]
    assert missing["category"] == "Warning" and missing["items"] == [f"{NS}/vm-a"]
    assert "does not re-create a completed migration" in missing["message"]
    assert cluster.names(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines") == []


def test_a_destination_secret_without_a_token_holds_the_plan(workspace_factory, cluster) -> None:
    ws = workspace_factory([small_vm("vm-a", 1)])
    env = to_cluster(ws, cluster)
    Path(env["MTV_GITOPS_SECRETS"]).write_text("openshift-mtv/cluster-token:\n  user: someone\n")
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 1
    conds = {c["type"]: c for c in ws.status("plan", "demo-plan")["status"]["conditions"]}
    assert conds["DestinationProviderNotReady"]["message"] == (
        "destination provider openshift-mtv/host: destination Provider openshift-mtv/host: its "
        "secret openshift-mtv/cluster-token has no 'token': put a service account token of the "
        "target cluster there (`kubectl create token SA`)"
    )
    host = ws.status("provider", "host")["status"]["conditions"]
    assert host[-1]["type"] == "ConnectionFailed"
    assert cluster.names("/api/v1/namespaces") == []


JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
GATE_GUARD_SECONDS = 60.0  # only ends a gate that would wait forever (the test then fails)


def parallel_disks(ws: Workspace, n: int) -> None:
    """``transfer.parallelDisks: n`` in the repo's .mtv-gitops.yaml, as a user commit."""
    text = (ws.clone / ".mtv-gitops.yaml").read_text()
    assert "\ntransfer:\n" in text
    text = text.replace("\ntransfer:\n", f"\ntransfer:\n  parallelDisks: {n}\n")
    ws.user_commit({".mtv-gitops.yaml": text}, f"{n} disks at once")


def jobs_at_once(cluster: Cluster, prefix: str) -> int:
    """The most transfer Jobs named ``prefix...`` that existed together, replayed from the
    emulator's request log (each create and delete in the order the server saw them)."""
    alive: set[str] = set()
    most = 0
    for r in cluster.requests():
        if not r.url.path.startswith(JOBS) or r.subresource:
            continue
        if r.method == "POST":
            name = (r.data or {}).get("metadata", {}).get("name", "")
            if name.startswith(prefix):
                alive.add(name)
        elif r.method == "DELETE" and (r.name or "").startswith(prefix):
            alive.discard(r.name)
        most = max(most, len(alive))
    return most


def hold_pods_until_jobs(kubelet: Kubelet, cluster: Cluster, n: int) -> None:
    """The kubelet runs no pod until ``n`` transfer Jobs exist at once (then runs freely): a
    VM whose disks were copied one after the other would never get there."""
    guard = time.monotonic() + GATE_GUARD_SECONDS

    def gate(job: dict) -> bool:
        if kubelet.runs or len(cluster.names(JOBS)) >= n:
            return True
        return time.monotonic() > guard

    kubelet.before_run = gate


def test_a_vms_disks_copy_in_parallel_jobs_up_to_the_bound(
    workspace_factory, cluster, kubelet
) -> None:
    ws = workspace_factory([small_vm("three-disks", 3, disks=3)])
    env = to_cluster(ws, cluster)
    parallel_disks(ws, 2)
    hold_pods_until_jobs(kubelet, cluster, 2)
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    assert jobs_at_once(cluster, "three-disks-disk-") == 2  # together, and never the third
    transfers = sorted(r.job for r in kubelet.runs if r.job.endswith("-xfer"))
    assert transfers == [f"three-disks-disk-{i}-xfer" for i in range(3)]
    copy = {s["name"]: s for s in vms_of(ws)["three-disks"]["pipeline"]}["CopyDisks"]
    assert [t["verified"] for t in copy["tasks"]] == [True, True, True]
    for i, disk in enumerate(ws.ovas["three-disks"].disks):
        image = kubelet.storage(NS, f"three-disks-disk-{i}") / "disk.img"
        assert disk_digest_of_file(image) == disk.digest


def test_one_disks_failed_job_fails_the_vm_and_keeps_the_others_copy(
    workspace_factory, cluster, kubelet
) -> None:
    ws = workspace_factory([small_vm("two-disks", 4, disks=2)])
    env = to_cluster(ws, cluster, retries=0)
    missing = ws.root / "no-such-folder" / "disk.img"
    kubelet.redirect[(NS, "two-disks-disk-1", "disk.img")] = missing
    hold_pods_until_jobs(kubelet, cluster, 2)
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr

    assert jobs_at_once(cluster, "two-disks-disk-") == 2
    vm = vms_of(ws)["two-disks"]
    assert vm["phase"] == "Failed"
    (reason,) = vm["error"]["reasons"]
    assert reason.startswith(f"transfer Job {NS}/two-disks-disk-1-xfer failed after 1 attempt(s)")
    tasks = {t["name"]: t for t in {s["name"]: s for s in vm["pipeline"]}["CopyDisks"]["tasks"]}
    assert tasks["two-disks-disk-0"]["phase"] == "Completed"
    assert tasks["two-disks-disk-0"]["verified"] is True
    assert tasks["two-disks-disk-1"]["phase"] != "Completed"
    first = ws.ovas["two-disks"].disks[0]
    image = kubelet.storage(NS, "two-disks-disk-0") / "disk.img"
    assert disk_digest_of_file(image) == first.digest

    # the fault fixed, a new Migration: the copied disk resumes from its checkpoints whole
    del kubelet.redirect[(NS, "two-disks-disk-1", "disk.img")]
    ws.user_commit(
        {"migrations/demo-plan-2.yaml": migration_yaml("demo-plan-2", "demo-plan")}, "again"
    )
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vm = vms_of(ws)["two-disks"]
    assert vm["phase"] == "Completed"
    tasks = {t["name"]: t for t in {s["name"]: s for s in vm["pipeline"]}["CopyDisks"]["tasks"]}
    assert "resumedChunks" in tasks["two-disks-disk-0"]["annotations"]
    for i, disk in enumerate(ws.ovas["two-disks"].disks):
        image = kubelet.storage(NS, f"two-disks-disk-{i}") / "disk.img"
        assert disk_digest_of_file(image) == disk.digest
