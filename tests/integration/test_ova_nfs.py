"""Cold migrations from OVAs on an NFS share (issue 22), against a real nfs-ganesha on
127.0.0.1: to the local target and, through the emulated cluster, to the KubeVirt target, whose
transfer Jobs read the share themselves; a server that goes away mid-copy; a new OVA on the
share while the daemon runs."""

from __future__ import annotations

import io
import signal
import subprocess
import tarfile
import time

import pytest
from ruamel.yaml import YAML

from reconciler.transfer.digest import disk_digest_of_file
from tests.support.cluster import TOKEN, Cluster
from tests.support.nfs_server import move_to_share
from tests.support.workspace import (
    CLI,
    Workspace,
    chunks_done,
    plan_yaml,
    small_vm,
    start_reconcile,
    throttle,
    wait_until,
)

pytestmark = pytest.mark.integration
NS = "demo-vms"


def to_cluster(ws: Workspace, cluster: Cluster) -> dict[str, str]:
    """Point the destination Provider at the emulated cluster (as
    tests/integration/test_kubevirt_target.py does); the reconciler's environment."""
    yaml = YAML(typ="rt")
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(yaml.load_all(path.read_text()))
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1", "transferRetries": "2"}
    out = io.StringIO()
    yaml.dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "migrate to the cluster")
    secrets = ws.root / "secrets.yaml"
    secrets.write_text(f"openshift-mtv/cluster-token:\n  token: {TOKEN}\n")
    return {"MTV_GITOPS_SECRETS": str(secrets)}


def vms_of(ws: Workspace) -> dict[str, dict]:
    plan = ws.status("plan", "demo-plan")["status"]
    return {v["name"]: v for v in plan["migration"]["vms"]}


PLAN_STATUS = "status/plan/openshift-mtv/demo-plan.yaml"


def _migrated_byte_identical(ws) -> None:
    """One pass migrates every VM of the workspace, each disk as its OVA holds it."""
    proc = ws.reconcile("--once")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    vms = vms_of(ws)
    assert {v["phase"] for v in vms.values()} == {"Completed"}, vms
    ns = ws.cluster / "demo-vms"
    for name, info in ws.ovas.items():
        for i, disk in enumerate(info.disks):
            assert disk_digest_of_file(ns / "disks" / f"{name}-disk-{i}.img") == disk.digest


def test_cold_migration_from_a_share_to_the_local_target(workspace_factory, nfs_server) -> None:
    ws = workspace_factory([small_vm("web-01", 1), small_vm("db-02", 2, disks=2)])
    url = move_to_share(ws, nfs_server)
    _migrated_byte_identical(ws)
    inventory = ws.cli("inventory", str(ws.clone), "--provider", "ova-files", check=True)
    assert "web-01" in inventory.stdout and "db-02" in inventory.stdout
    assert url.startswith("127.0.0.1:/")


def test_cold_migration_of_loose_ovfs_on_a_share(workspace_factory, nfs_server) -> None:
    """Folders holding a loose ``.ovf`` with its disks (the OVAs unpacked in place), as
    Forklift also serves them: migrated like the OVAs, byte-identical, manifests checked."""
    ws = workspace_factory([small_vm("web-01", 1), small_vm("db-02", 2, disks=2)])
    move_to_share(ws, nfs_server)
    for name in ws.ovas:
        ova = ws.ova / f"{name}.ova"
        folder = ws.ova / name
        folder.mkdir()
        with tarfile.open(ova) as tar:
            tar.extractall(folder, filter="data")
        for p in [folder, *folder.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        ova.unlink()
    _migrated_byte_identical(ws)


def test_cold_migration_from_a_share_to_a_kubevirt_cluster(
    workspace_factory, nfs_server, cluster, kubelet
) -> None:
    ws = workspace_factory([small_vm("web-01", 1)])
    url = move_to_share(ws, nfs_server)
    env = to_cluster(ws, cluster)
    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert vms_of(ws)["web-01"]["phase"] == "Completed"
    [run] = [r for r in kubelet.runs if r.job == "web-01-disk-0-xfer"]
    assert url in run.argv  # the Job was given the share and read it itself
    image = kubelet.storage(NS, "web-01-disk-0") / "disk.img"
    assert disk_digest_of_file(image) == ws.ovas["web-01"].disks[0].digest


def test_server_stopped_mid_copy_then_started_the_copy_goes_on(
    workspace_factory, nfs_server
) -> None:
    """The server crashes mid-copy and comes back: the reads in flight wait for it (the NFS
    client reconnects, as a hard mount would) and the copy goes on from where it was; a
    longer outage fails the VM with the share's name, and a new Migration resumes from the
    checkpoints (as for any source: tests/integration/test_crash_and_races.py)."""
    ws = workspace_factory([small_vm("flaky", 3, data_mib=48, capacity_mib=128)])
    move_to_share(ws, nfs_server)
    throttle(ws, 8)  # ~6 s of copying: the server goes away in the middle however late
    proc = start_reconcile(ws)
    try:
        deadline = time.monotonic() + 120  # a safety net, not a measure of speed
        while chunks_done(ws) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        nfs_server.stop()
        done_at_stop = chunks_done(ws)
        nfs_server.start()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 3 <= done_at_stop < 32, out
    [vm] = vms_of(ws).values()
    assert vm["phase"] == "Completed", vm
    [task] = next(s for s in vm["pipeline"] if s["name"] == "CopyDisks")["tasks"]
    assert task["verified"] is True
    image = ws.cluster / "demo-vms" / "disks" / "flaky-disk-0.img"
    assert disk_digest_of_file(image) == ws.ovas["flaky"].disks[0].digest


def test_an_ova_that_changes_or_vanishes_mid_copy_fails_its_vm(
    workspace_factory, nfs_server
) -> None:
    ws = workspace_factory(
        [
            small_vm("grows", 4, data_mib=32, capacity_mib=64),
            small_vm("goes", 5, data_mib=32, capacity_mib=64),
        ]
    )
    share = move_to_share(ws, nfs_server)
    throttle(ws, 4)
    proc = start_reconcile(ws)
    try:
        deadline = time.monotonic() + 120  # a safety net, not a measure of speed
        while chunks_done(ws) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.05)
        with (ws.ova / "grows.ova").open("ab") as f:
            f.write(bytes(512))
        (ws.ova / "goes.ova").unlink()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    vms = vms_of(ws)
    assert {v["phase"] for v in vms.values()} == {"Failed"}, out
    grows = " ".join(vms["grows"]["error"]["reasons"])
    assert f"{share}/grows.ova changed" in grows, grows
    goes = " ".join(vms["goes"]["error"]["reasons"])
    assert f"{share}/goes.ova" in goes and "vanished" in goes, goes
    for v in vms.values():
        [task] = next(s for s in v["pipeline"] if s["name"] == "CopyDisks")["tasks"]
        assert task.get("verified") is not True  # a partial disk is never reported done


def test_a_new_ova_on_the_share_shows_up_while_the_daemon_runs(
    workspace_factory, nfs_server
) -> None:
    ws = workspace_factory([small_vm("first", 6, data_mib=1, capacity_mib=16)])
    ws.user_commit({"migrations/demo-plan-1.yaml": None}, "no migration: inventory only")
    move_to_share(ws, nfs_server)

    def vms_in_status() -> int:
        text = ws.remote_file("status/provider/openshift-mtv/ova-files.yaml") or "{}"
        return int(
            (YAML(typ="safe").load(text) or {}).get("status", {}).get("inventory", {}).get("vms", 0)
        )

    args = ["daemon", str(ws.clone), "--interval", "0.5", "--state-dir", str(ws.state)]
    proc = subprocess.Popen(
        [*CLI, *args, "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: vms_in_status() == 1, 120, lambda: str(ws.log()))
        late = ws.add_ova(small_vm("late", 7, data_mib=1, capacity_mib=16))
        late.path.chmod(0o644)
        # the next pass (here: the user adds the new VM to the plan) sees it, no restart
        ws.user_commit({"plans/demo-plan.yaml": plan_yaml("demo-plan", ["first", "late"])}, "late")
        wait_until(lambda: vms_in_status() == 2, 120, lambda: str(ws.log()))
        wait_until(lambda: "late" in (ws.remote_file(PLAN_STATUS) or ""), 120)
        assert "VMNotFound" not in ws.remote_file(PLAN_STATUS)  # validation found it too
        inventory = ws.cli("inventory", str(ws.clone), "--provider", "ova-files", check=True)
        assert "late" in inventory.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
