"""A warm vSphere plan onto a KubeVirt cluster, through git: the vCenter simulator with
changed block tracking as the source, kmock's KubernetesEmulator as the destination (a
Provider with a url and a token) and the test playing the kubelet that runs each round's
transfer Job (tests/targets/cluster.py). The initial copy, a precopy round of what the guest
wrote, the cutover when spec.cutover is set; the PVCs hold the source's final bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.cluster import TOKEN, Cluster, Kubelet
from tests.support.vsphere import start_simulator
from tests.support.vsphere_repo import (
    make_round_due,
    our_snapshots,
    reconcile_once,
    set_cutover,
    vm_status,
    warm_source,
    warm_workspace,
    write_tracked,
)

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
NS = "vs-vms"
PVCS = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"


def _to_cluster(ws, cluster: Cluster, env: dict[str, str]) -> None:
    """The destination Provider points at the cluster (a user commit); its token joins the
    vCenter credentials in the secrets file. The StorageMap's ``standard`` class is a Ceph RBD
    one there, so the disks on LocalDS_0 get Block PVCs (with checkpoint PVCs beside them)."""
    yaml = YAML(typ="rt")
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(yaml.load_all(path.read_text()))
    assert docs[1]["spec"]["type"] == "openshift"
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1"}
    out = io.StringIO()
    yaml.dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "migrate to the cluster")
    secrets = Path(env["MTV_GITOPS_SECRETS"])
    secrets.write_text(secrets.read_text() + f"openshift-mtv/cluster-token:\n  token: {TOKEN}\n")
    cluster.create(
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "standard"},
            "provisioner": "openshift-storage.rbd.csi.ceph.com",
        },
    )


def _runs(kubelet: Kubelet) -> list:
    """The pods of the warm VM's Jobs (the workspace's cold OVA plan has its own)."""
    return [r for r in kubelet.runs if r.job.startswith("dc0-h0-vm0-")]


def _images(kubelet: Kubelet, cluster: Cluster) -> dict[str, bytes]:
    """Each disk PVC's content, as the kubelet's storage holds it."""
    out = {}
    for pvc in cluster.list(PVCS):
        name = pvc["metadata"]["name"]
        if name.endswith("-ckpt"):
            continue
        if pvc["spec"]["volumeMode"] == "Block":
            out[name] = kubelet.storage(NS, name).with_suffix(".raw").read_bytes()
        else:
            out[name] = (kubelet.storage(NS, name) / "disk.img").read_bytes()
    return out


def test_a_warm_plan_onto_a_cluster_copies_rounds_in_jobs_and_cuts_over(
    workspace_factory, cluster, kubelet, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        _, _, disk_file, data, others = warm_source(sim)
        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0")
        _to_cluster(ws, cluster, env)

        # pass 1: the initial snapshot, every disk copied whole by its Job at it
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        [round0] = vm["warm"]["precopies"]
        assert round0["round"] == 0 and round0["full"]
        disks = len(others) + 1
        assert len(_runs(kubelet)) == disks and {r.returncode for r in _runs(kubelet)} == {0}
        assert all("--snapshot" in r.argv and "--round" not in r.argv for r in _runs(kubelet))
        pvcs = {p["metadata"]["name"]: p for p in cluster.list(PVCS)}
        disk_pvcs = sorted(n for n in pvcs if not n.endswith("-ckpt"))
        block = [n for n in disk_pvcs if pvcs[n]["spec"]["volumeMode"] == "Block"]
        assert block, "the disks on LocalDS_0 are Block PVCs"
        ckpts = sorted(f"{n}-ckpt" for n in block)
        assert sorted(n for n in pvcs if n.endswith("-ckpt")) == ckpts  # kept for the rounds
        assert cluster.names(f"/apis/batch/v1/namespaces/{NS}/jobs") == []
        assert len(our_snapshots(sim, "DC0_H0_VM0")) == 1

        # the guest writes; pass 2 after the interval: round 1's Jobs copy only that
        write_tracked(sim, disk_file, data, 1 * MiB, b"\x11" * 4096)
        write_tracked(sim, disk_file, data, 5 * MiB + 512, b"\x22" * 65536)
        make_round_due(ws)
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        [_, round1] = vm["warm"]["precopies"]
        assert round1["round"] == 1 and round1["extents"] == 2
        assert round1["chunks"] == 2  # two 1 MiB chunks touched
        assert 4096 + 65536 <= round1["bytes"] <= 2 * MiB
        rounds = _runs(kubelet)[disks:]
        assert len(rounds) == disks and {r.returncode for r in rounds} == {0}
        for r in rounds:
            assert r.argv[r.argv.index("--round") + 1] == "1"
            assert r.argv[r.argv.index("--since") + 1]
        assert sorted(n for n in cluster.names(PVCS) if n.endswith("-ckpt")) == ckpts

        # more writes, then the user sets spec.cutover to now: the final delta, the VM
        write_tracked(sim, disk_file, data, 7 * MiB, b"\x33" * 8192)
        set_cutover(ws, "2020-01-01T00:00:00Z", "Now")
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "Completed", vm
        warm = vm["warm"]
        assert warm["precopies"][-1].get("final") is True
        assert 8192 <= warm["cutover"]["bytes"] <= MiB
        steps = {s["name"]: s["phase"] for s in vm["pipeline"]}
        for name in ("PowerOffSource", "CreateFinalSnapshot", "CopyFinalDelta", "CreateVM"):
            assert steps[name] == "Completed"
        assert len(_runs(kubelet)) == 3 * disks

        images = _images(kubelet, cluster)
        assert sorted(images) == disk_pvcs  # the checkpoint PVCs went with the final round
        blobs = [b[: len(data)] if len(b) >= len(data) else b for b in images.values()]
        assert bytes(data) in blobs  # byte-identical to the source's final content
        for other in others:
            assert any(b[: len(other)] == other for b in images.values())
        assert cluster.names(f"/apis/batch/v1/namespaces/{NS}/jobs") == []
        assert cluster.names(f"/api/v1/namespaces/{NS}/secrets") == []
        vmo = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/dc0-h0-vm0")
        assert vmo["spec"]["runStrategy"] == "Always"  # the source ran
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in vmo["spec"]["template"]["spec"]["volumes"]
        ]
        assert sorted(claims) == disk_pvcs
        assert our_snapshots(sim, "DC0_H0_VM0") == []  # no snapshot of ours left
    finally:
        sim.stop()
