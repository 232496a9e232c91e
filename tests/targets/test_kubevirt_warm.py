"""Warm migration's rounds through transfer Jobs: round 0 copies the disk whole at a snapshot,
each later round only what the guest wrote since (the Job asks the vCenter simulator itself),
on a Filesystem PVC and a Block one; the Block disk's checkpoint PVC lives until the final
round, a Job left from another round is not taken for this one."""

from __future__ import annotations

import threading

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.sources import sha1_fingerprint
from reconciler.targets.base import CopyRequest, DiskClaim, SourceRef, TargetError
from reconciler.targets.kubevirt.transfer_job import (
    ROUND_ANNOTATION,
    SNAPSHOT_ANNOTATION,
    checkpoint_name,
    transfer_job,
    transfer_name,
)
from reconciler.transfer.request import DiskCopy
from tests.support.vsphere import connect, start_simulator
from tests.support.vsphere_repo import warm_source, write_tracked

MiB = 1024 * 1024
NS = "vms"
LABELS = {"plan": "p", "vmID": "vm-1", "migration": "p-1", "app.kubernetes.io/managed-by": "x"}
PVC_PATH = f"/api/v1/namespaces/{NS}/persistentvolumeclaims"
JOB_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"


@pytest.fixture(scope="module")
def sim():
    s = start_simulator(hosts=1, vms=2, datastores=2)
    yield s
    s.stop()


def _claim(name: str, mode: str, size: int) -> DiskClaim:
    manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": mode,
            "resources": {"requests": {"storage": f"{size // MiB + 1}Mi"}},
        },
    }
    return DiskClaim(name, NS, size, manifest)


def _no_local_reads():
    raise AssertionError("the kubevirt target must not read the source in-process")


@pytest.mark.integration  # the vCenter simulator
@pytest.mark.parametrize(
    ("mode", "vm_name", "seed"), [("Filesystem", "DC0_H0_VM0", 5), ("Block", "DC0_H0_VM1", 9)]
)
def test_rounds_copy_only_what_changed_into_the_same_pvc(
    mode, vm_name, seed, sim, cluster, kubelet, target, tmp_path
) -> None:
    vm_id, key, disk_file, data, _ = warm_source(sim, vm_name, seed=seed)
    conn = connect(sim)  # the reconciler's own connection: snapshots and change ids
    fp = sha1_fingerprint(sim.host, sim.port)
    ref = SourceRef(
        "openshift-mtv",
        "vcenter",
        "vsphere",
        sim.url,
        {},
        ("openshift-mtv", "vcenter-creds"),
        sim.secret(thumbprint=fp),
    )
    pvc = f"{vm_name.lower().replace('_', '-')}-disk"
    claim = _claim(pvc, mode, len(data))
    target.ensure_namespace(NS, {})
    target.ensure_disk(claim)
    store = ProgressStore(tmp_path / "reconciler.db")  # the reconciler's: the Job keeps its own
    image = (
        kubelet.storage(NS, pvc) / "disk.img"
        if mode == "Filesystem"
        else kubelet.storage(NS, pvc).with_suffix(".raw")
    )
    ckpt = checkpoint_name(claim)
    jobs: list[dict] = []
    seen = kubelet.before_run

    def watch(job: dict) -> bool:
        jobs.append(job)
        return True if seen is None else seen(job)

    kubelet.before_run = watch

    def request(
        snap: str, change_id: str, changed: tuple = (), round: int = 0, since: str = ""
    ) -> CopyRequest:
        return CopyRequest(
            claim=claim,
            copy=DiskCopy(
                vm_id,
                key,
                chunk_mib=1,
                streams=2,
                snapshot_id=snap,
                change_id=change_id,
                round=round,
                since=since,
            ),
            disk_id=f"p/{vm_id}/{pvc}",
            labels={**LABELS, "vmDisk": key},
            source=ref,
            open_source=_no_local_reads,
            store=store,
            on_progress=lambda p: None,
            halt=threading.Event(),
            changed=changed,
        )

    try:
        # round 0: the whole disk as the first snapshot holds it
        snap0 = conn.create_snapshot(vm_id, "mtv-gitops-t-0")
        id0 = conn.change_ids(vm_id, snap0)[key]
        write_tracked(sim, disk_file, data, 3 * MiB, b"\x99" * 4096)  # after the snapshot
        out0 = target.copy_disk(request(snap0, id0)).result
        assert out0.round == 0 and out0.source_digest == out0.target_digest
        argv = jobs[-1]["spec"]["template"]["spec"]["containers"][0]["command"]
        assert argv[argv.index("--snapshot") + 1] == snap0
        assert argv[argv.index("--change-id") + 1] == id0
        assert "--round" not in argv and "--since" not in argv
        assert jobs[-1]["metadata"]["annotations"][ROUND_ANNOTATION] == "0"
        assert jobs[-1]["metadata"]["annotations"][SNAPSHOT_ANNOTATION] == snap0
        full = out0.bytes_written
        assert full >= 4 * MiB  # the data half of the disk (content(): 1 MiB data, 1 of zeros)
        if mode == "Block":
            assert ckpt in cluster.names(PVC_PATH)  # kept: round 1 builds on its checkpoints

        # the guest writes; round 1 copies what changed since round 0's change id
        write_tracked(sim, disk_file, data, 1 * MiB, b"\x11" * 4096)
        write_tracked(sim, disk_file, data, 5 * MiB + 512, b"\x22" * 65536)
        conn.remove_snapshot(vm_id, snap0)
        snap1 = conn.create_snapshot(vm_id, "mtv-gitops-t-1")
        id1 = conn.change_ids(vm_id, snap1)[key]
        changed = conn.changed_extents(vm_id, snap1, key, id0)

        # a Job left from round 0 (never run) is not taken for round 1's
        stale = transfer_job(
            request(snap0, id0), transfer_name(claim), target.settings, {**LABELS, "vmDisk": key}
        )
        kubelet.before_run = lambda job: (
            job["metadata"]["annotations"][ROUND_ANNOTATION] != "0" and watch(job)
        )
        cluster.create(JOB_PATH, stale)
        runs_before = len(kubelet.runs)
        out1 = target.copy_disk(
            request(snap1, id1, round=1, since=id0, changed=tuple(changed))
        ).result
        kubelet.before_run = watch
        assert [r.returncode for r in kubelet.runs[runs_before:]] == [0]  # round 1's only
        argv = kubelet.runs[-1].argv
        assert argv[argv.index("--round") + 1] == "1"
        assert argv[argv.index("--since") + 1] == id0
        assert argv[argv.index("--change-id") + 1] == id1
        assert out1.round == 1 and out1.source_digest == out1.target_digest
        assert out1.chunks_touched == 3  # 1 MiB, 3 MiB (written after snapshot 0), 5 MiB
        assert 2 * 4096 + 65536 <= out1.bytes_written <= 3 * MiB < full
        assert image.read_bytes()[: len(data)] == bytes(data)
        if mode == "Block":
            assert ckpt in cluster.names(PVC_PATH)  # still kept: more rounds may come

        # the final round at cutover
        write_tracked(sim, disk_file, data, 7 * MiB, b"\x33" * 8192)
        conn.remove_snapshot(vm_id, snap1)
        snap2 = conn.create_snapshot(vm_id, "mtv-gitops-t-final")
        id2 = conn.change_ids(vm_id, snap2)[key]
        changed = conn.changed_extents(vm_id, snap2, key, id1)
        out2 = target.copy_disk(
            request(snap2, id2, round=2, since=id1, changed=tuple(changed))
        ).result
        conn.remove_snapshot(vm_id, snap2)
        assert out2.round == 2 and out2.chunks_touched == 1
        assert 8192 <= out2.bytes_written <= MiB
        assert out2.source_digest == out2.target_digest
        assert image.read_bytes()[: len(data)] == bytes(data)  # byte-identical to the source
        if mode == "Block":  # kept until the VM is created: a killed pass may run it again
            assert ckpt in cluster.names(PVC_PATH)
        target.release_disk(claim)  # the VM is created: no round comes any more
        assert ckpt not in cluster.names(PVC_PATH)
        assert cluster.names(PVC_PATH) == [pvc]
        assert cluster.names(JOB_PATH) == []
        assert len(kubelet.runs) == 3
    finally:
        conn.close()


def test_a_warm_request_without_its_snapshot_or_since_is_refused(target, tmp_path) -> None:
    ref = SourceRef("ns", "vc", "vsphere", "https://vc/sdk")
    base = dict(
        claim=_claim("d", "Filesystem", MiB),
        disk_id="x",
        labels=dict(LABELS),
        source=ref,
        open_source=_no_local_reads,
        store=ProgressStore(tmp_path / "p.db"),
        on_progress=lambda p: None,
        halt=threading.Event(),
    )
    with pytest.raises(TargetError, match="reads the source at a snapshot"):
        target.copy_disk(CopyRequest(**base, copy=DiskCopy("vm-1", "2000", change_id="52 1/2")))
    with pytest.raises(TargetError, match="needs the change id"):
        copy = DiskCopy("vm-1", "2000", round=1, snapshot_id="snapshot-9")
        target.copy_disk(CopyRequest(**base, copy=copy))


def test_cancel_cleanup_removes_the_checkpoint_pvc_kept_between_rounds(
    target, cluster, tmp_path
) -> None:
    """No kubelet: the round's Job never runs; what a canceled VM's cleanup finds by its
    labels goes, the kept checkpoint PVC with the rest."""
    claim = _claim("web-disk-1", "Block", 8 * MiB)
    target.ensure_namespace(NS, {})
    target.ensure_disk(claim)
    ref = SourceRef(
        "openshift-mtv", "vc", "vsphere", "https://vc/sdk", {}, ("openshift-mtv", "c"),
        {"user": "u", "password": "p"},
    )  # fmt: skip
    req = CopyRequest(
        claim=claim,
        copy=DiskCopy(
            "vm-1", "2001", snapshot_id="snapshot-7", change_id="52 1/9", round=3, since="52 1/8"
        ),
        disk_id="x",
        labels={**LABELS, "vmDisk": "2001"},
        source=ref,
        open_source=_no_local_reads,
        store=ProgressStore(tmp_path / "p.db"),
        on_progress=lambda p: None,
        halt=threading.Event(),
    )
    job = target.jobs.start(req, transfer_name(claim))
    assert job["metadata"]["annotations"][ROUND_ANNOTATION] == "3"
    assert sorted(cluster.names(PVC_PATH)) == ["web-disk-1", "web-disk-1-ckpt"]
    assert cluster.names(JOB_PATH) == ["web-disk-1-xfer"]
    assert target.cleanup(NS, {"plan": "p", "vmID": "vm-1"}) >= 4  # Job, Secret, 2 PVCs
    assert cluster.names(PVC_PATH) == [] and cluster.names(JOB_PATH) == []
    assert cluster.names(f"/api/v1/namespaces/{NS}/secrets") == []
