"""The kubevirt target against kmock's KubernetesEmulator, with the test playing the kubelet:
objects field by field, disks copied by transfer Jobs, retries, a full PVC, halt and resume."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, NicSpec, build_ova, semi_random
from reconciler.planner.model import DiskPlan, NicPlan, VmPlan
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.secrets.resolver import env_name
from reconciler.targets.base import CopyRequest, DiskClaim, DiskLost, SourceRef, TargetError
from reconciler.targets.destination import destination_target
from reconciler.targets.kubevirt.manifests import StorageSettings, disk_claims, vm_manifest
from reconciler.targets.kubevirt.target import KubevirtTarget
from reconciler.targets.kubevirt.transfer_job import JobSettings, checkpoint_name, transfer_name
from reconciler.targets.local import LocalTarget
from reconciler.transfer.digest import disk_digest_of_file
from reconciler.transfer.engine import TransferCanceled
from reconciler.transfer.request import DiskCopy, TransferRequest
from tests.support.cluster import TOKEN, Cluster

MIB = 1024 * 1024
NS = "vms"
LABELS = {
    "plan": "plan-a",
    "vmID": "vm-1",
    "migration": "plan-a-1",
    "app.kubernetes.io/managed-by": "mtv-gitops",
}
SECRET = {"user": "administrator@vsphere.local", "password": "s3cret!"}
STORAGE = StorageSettings(provisioners={"standard": "kubernetes.io/hostpath-provisioner"})


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory):
    """An OVA with two disks (12 MiB of data in each), and the VM as the planner makes it."""
    folder = tmp_path_factory.mktemp("ova")
    disks = [DiskSpec(64 * MIB, [(8 * MIB, semi_random(12 * MIB, 7 + i))]) for i in range(2)]
    nics = [NicSpec("VM Network", "00:50:56:01:02:00"), NicSpec("backend", "00:50:56:01:02:01")]
    info = build_ova(
        folder / "web.ova",
        "web",
        cpus=4,
        cores_per_socket=2,
        memory_mb=3072,
        firmware="efi",
        disks=disks,
        nics=nics,
    )
    conn = connect("ova", str(folder), {}, {})
    (inv_vm,) = conn.inventory().vms
    conn.close()
    ref = SourceRef(
        "openshift-mtv",
        "ova-files",
        "ova",
        str(folder),
        {"streams": "2"},
        ("openshift-mtv", "ova-creds"),
        dict(SECRET),
    )
    vm = VmPlan(
        vm_id=inv_vm.id,
        source_name="web",
        target_name="web",
        namespace=NS,
        cpus=4,
        cores_per_socket=2,
        memory_mb=3072,
        firmware="efi",
        power_state="On",
        guest_os="",
        disks=(
            DiskPlan(inv_vm.disks[0].key, 64 * MIB, "web-disk-0", "standard", "", ""),
            DiskPlan(inv_vm.disks[1].key, 64 * MIB, "web-disk-1", "fast", "ReadWriteMany", "Block"),
        ),
        nics=(
            NicPlan("nic-0", "00:50:56:01:02:00", "virtio", "n-1", "pod"),
            NicPlan("nic-1", "00:50:56:01:02:01", "e1000e", "n-2", "multus", "vms/backend-net"),
        ),
        labels=dict(LABELS),
    )
    return ref, vm, info


def request(
    vm: VmPlan, claim: DiskClaim, ref: SourceRef, store: ProgressStore, **kw
) -> CopyRequest:
    disk = next(d for d in vm.disks if d.pvc_name == claim.name)

    def no_local_reads():
        raise AssertionError("the kubevirt target must not read the source in-process")

    copy_fields = {f.name for f in fields(DiskCopy)}
    base = dict(
        claim=claim,
        copy=DiskCopy(
            vm.vm_id, disk.key, streams=2, **{k: v for k, v in kw.items() if k in copy_fields}
        ),
        disk_id=f"plan/{vm.vm_id}/{claim.name}",
        labels={**vm.labels, "vmDisk": disk.key},
        source=ref,
        open_source=no_local_reads,
        store=store,
        on_progress=lambda p: None,
        halt=threading.Event(),
    )
    base.update({k: v for k, v in kw.items() if k not in copy_fields})
    return CopyRequest(**base)


def allocate(target: KubevirtTarget, vm: VmPlan) -> list[DiskClaim]:
    target.ensure_namespace(NS, {"app.kubernetes.io/managed-by": "mtv-gitops"})
    claims = disk_claims(vm, STORAGE)
    for claim in claims:
        target.ensure_disk(claim)
    return claims


def test_a_destination_with_url_and_token_reaches_the_cluster(cluster: Cluster) -> None:
    t = destination_target(
        "openshift-mtv/remote",
        cluster.url,
        "openshift-mtv/remote-token",
        {"token": TOKEN},
        {},
        LocalTarget(Path("/nonexistent")),
        environ={},
    )
    assert isinstance(t, KubevirtTarget) and t.describe() == f"KubeVirt cluster at {cluster.url}"
    assert t.vm_names(NS) == set()
    (seen,) = [r for r in cluster.requests() if r.url.path.endswith("/virtualmachines")]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


def test_destination_rules_name_the_provider(tmp_path: Path) -> None:
    local = LocalTarget(tmp_path)
    kw = dict(settings={}, local=local, environ={})
    assert destination_target("ns/host", "", None, {}, **kw) is local  # a laptop
    with pytest.raises(TargetError, match=r"ns/remote: its secret ns/t has no 'token'"):
        destination_target("ns/remote", "https://api.x:6443", "ns/t", {"user": "u"}, **kw)
    with pytest.raises(TargetError, match=r"ns/remote has a url but no spec.secret"):
        destination_target("ns/remote", "https://api.x:6443", None, {}, **kw)
    with pytest.raises(TargetError, match=r"ns/host has a secret \(ns/t\) but no url"):
        destination_target("ns/host", "", "ns/t", {"token": "x"}, **kw)


def test_an_unreachable_cluster_or_a_refused_token_is_a_clear_error(cluster: Cluster) -> None:
    gone = KubevirtTarget.from_url("http://127.0.0.1:9", "t")
    with pytest.raises(TargetError, match=r"cannot reach the cluster at http://127.0.0.1:9"):
        gone.vm_names(NS)


def test_objects_field_by_field(target, cluster, kubelet, source, tmp_path) -> None:
    ref, vm, _ = source
    jobs: list[dict] = []
    kubelet.before_run = lambda job: jobs.append(copy.deepcopy(job))
    claims = allocate(target, vm)
    target.ensure_namespace(NS, {"other": "labels"})  # twice: unchanged

    ns = cluster.get(f"/api/v1/namespaces/{NS}")
    assert ns["metadata"] == {"name": NS, "labels": {"app.kubernetes.io/managed-by": "mtv-gitops"}}

    fs = cluster.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/web-disk-0")
    assert fs["metadata"]["labels"] == {**LABELS, "vmDisk": vm.disks[0].key}
    assert fs["spec"] == {
        "accessModes": ["ReadWriteOnce"],  # the hostpath provisioner's default (MTV docs)
        "volumeMode": "Filesystem",
        "storageClassName": "standard",
        "resources": {"requests": {"storage": "68Mi"}},  # 64 MiB + CDI's 5.5% overhead
    }
    block = cluster.get(f"/api/v1/namespaces/{NS}/persistentvolumeclaims/web-disk-1")
    assert block["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "volumeMode": "Block",
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "64Mi"}},
    }

    store = ProgressStore(tmp_path / "p.db")
    for claim in claims:
        target.copy_disk(request(vm, claim, ref, store))
    target.ensure_vm(vm_manifest(vm))

    by_name = {j["metadata"]["name"]: j for j in jobs}
    assert set(by_name) == {"web-disk-0-xfer", "web-disk-1-xfer"}
    job = by_name["web-disk-0-xfer"]
    assert job["metadata"]["labels"] == {
        **LABELS,
        "vmDisk": vm.disks[0].key,
        "app.kubernetes.io/component": "transfer",
    }
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["podFailurePolicy"]["rules"][0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "transfer", "operator": "In", "values": [4]},
    }
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["volumes"] == [
        {"name": "disk", "persistentVolumeClaim": {"claimName": "web-disk-0"}}
    ]
    (c,) = pod["containers"]
    assert c["image"] == "example.org/mtv:1"
    assert c["volumeMounts"] == [{"name": "disk", "mountPath": "/data"}]
    assert "volumeDevices" not in c
    assert c["command"] == [
        "mtv-gitops", "transfer",
        "--provider", "openshift-mtv/ova-files", "--type", "ova", "--url", ref.url,
        "--setting", "streams=2", "--secret", "openshift-mtv/ova-creds",
        "--vm", vm.vm_id, "--disk", vm.disks[0].key,
        "--output", "/data/disk.img", "--checkpoints", "/data/.mtv-gitops-transfer.db",
        "--streams", "2", "--chunk-mib", "4", "--termination-log", "/dev/termination-log",
    ]  # fmt: skip
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["env"] == [
        {
            "name": env_name("openshift-mtv", "ova-creds", key),
            "valueFrom": {"secretKeyRef": {"name": "web-disk-0-xfer", "key": key}},
        }
        for key in ("password", "user")
    ]
    text = str(jobs)
    assert SECRET["password"] not in text and SECRET["user"] not in text  # by reference only

    bjob = by_name["web-disk-1-xfer"]
    (bc,) = bjob["spec"]["template"]["spec"]["containers"]
    assert bc["volumeDevices"] == [{"name": "disk", "devicePath": "/dev/disk0"}]
    assert bc["volumeMounts"] == [{"name": "checkpoints", "mountPath": "/checkpoints"}]
    assert bjob["spec"]["template"]["spec"]["volumes"][1] == {
        "name": "checkpoints",
        "persistentVolumeClaim": {"claimName": "web-disk-1-ckpt"},
    }
    assert bc["command"][bc["command"].index("--output") + 1] == "/dev/disk0"
    assert bc["command"][bc["command"].index("--checkpoints") + 1] == "/checkpoints/transfer.db"

    # the pods read the credentials from the Secret beside the Job
    env = kubelet.runs[0].env
    assert env[env_name("openshift-mtv", "ova-creds", "password")] == SECRET["password"]

    vmo = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/web")
    assert vmo["metadata"]["labels"] == LABELS
    assert vmo["spec"]["runStrategy"] == "Always"
    domain = vmo["spec"]["template"]["spec"]["domain"]
    assert domain["cpu"] == {"sockets": 2, "cores": 2, "threads": 1}
    assert domain["memory"] == {"guest": "3072Mi"}
    assert domain["firmware"] == {"bootloader": {"efi": {"secureBoot": False}}}
    assert vmo["spec"]["template"]["spec"]["volumes"] == [
        {"name": "vol-0", "persistentVolumeClaim": {"claimName": "web-disk-0"}},
        {"name": "vol-1", "persistentVolumeClaim": {"claimName": "web-disk-1"}},
    ]
    assert domain["devices"]["interfaces"] == [
        {"name": "net-0", "model": "virtio", "macAddress": "00:50:56:01:02:00", "masquerade": {}},
        {"name": "net-1", "model": "e1000e", "macAddress": "00:50:56:01:02:01", "bridge": {}},
    ]
    assert vmo["spec"]["template"]["spec"]["networks"] == [
        {"name": "net-0", "pod": {}},
        {"name": "net-1", "multus": {"networkName": "vms/backend-net"}},
    ]
    # what a copy needed is gone once it succeeded; the disks and the VM stay
    assert cluster.names(f"/apis/batch/v1/namespaces/{NS}/jobs") == []
    assert cluster.names(f"/api/v1/namespaces/{NS}/secrets") == []
    assert cluster.names(f"/api/v1/namespaces/{NS}/persistentvolumeclaims") == [
        "web-disk-0",
        "web-disk-1",
    ]
    assert target.vm_names(NS) == {"web"}
    assert target.get_vm(NS, "web")["metadata"]["name"] == "web"
    assert target.get_vm(NS, "nope") is None
    target.ensure_vm(vm_manifest(vm, running=False))  # an update, not a conflict
    assert target.get_vm(NS, "web")["spec"]["runStrategy"] == "Halted"
    assert target.locate(NS, "web")["virtualmachine"].endswith(
        "/apis/kubevirt.io/v1/namespaces/vms/virtualmachines/web"
    )
    assert target.free_bytes(NS) is None


def test_disks_are_byte_identical_and_a_second_copy_resumes_all(
    target, kubelet, source, tmp_path
) -> None:
    ref, vm, info = source
    claims = allocate(target, vm)
    store = ProgressStore(tmp_path / "p.db")
    seen = []
    for claim, built in zip(claims, info.disks, strict=True):
        out = target.copy_disk(request(vm, claim, ref, store, on_progress=seen.append))
        assert out.result.source_digest == out.result.target_digest == built.digest
        assert out.attempts == 1
    fs_image = kubelet.storage(NS, "web-disk-0") / "disk.img"
    block_device = kubelet.storage(NS, "web-disk-1").with_suffix(".raw")
    assert disk_digest_of_file(fs_image) == info.disks[0].digest
    assert disk_digest_of_file(block_device) == info.disks[1].digest
    assert (kubelet.storage(NS, "web-disk-0") / ".mtv-gitops-transfer.db").exists()
    assert (kubelet.storage(NS, "web-disk-1-ckpt") / "transfer.db").exists()

    again = target.copy_disk(request(vm, claims[0], ref, store))  # a Job made again
    assert again.result.resumed_chunks == again.result.chunks_total == 16


def test_a_failing_job_is_retried_then_the_pod_message_is_the_error(
    target, kubelet, source, tmp_path
) -> None:
    ref, vm, _ = source
    claims = allocate(target, vm)
    kubelet.redirect[(NS, "web-disk-0", "disk.img")] = tmp_path / "no-such-dir" / "disk.img"
    with pytest.raises(TargetError) as err:
        target.copy_disk(request(vm, claims[0], ref, ProgressStore(tmp_path / "p.db")))
    message = str(err.value)
    assert message.startswith("transfer Job vms/web-disk-0-xfer failed after 3 attempt(s): ")
    assert "No such file or directory" in message
    assert [r.returncode for r in kubelet.runs] == [1, 1, 1]  # backoffLimit 2: three pods
    # the failed Job stays for `kubectl logs`; a later Migration makes it again
    job = target.api.get(f"/apis/batch/v1/namespaces/{NS}/jobs/web-disk-0-xfer")
    assert job is not None

    del kubelet.redirect[(NS, "web-disk-0", "disk.img")]
    labels = {**vm.labels, "migration": "plan-a-2", "vmDisk": vm.disks[0].key}
    out = target.copy_disk(
        request(vm, claims[0], ref, ProgressStore(tmp_path / "p.db"), labels=labels)
    )
    assert out.result.source_digest == out.result.target_digest


def test_a_full_pvc_fails_at_once_and_names_the_pvc(target, kubelet, source, tmp_path) -> None:
    ref, vm, _ = source
    claims = allocate(target, vm)
    kubelet.redirect[(NS, "web-disk-0", "disk.img")] = Path("/dev/full")
    with pytest.raises(TargetError) as err:
        target.copy_disk(request(vm, claims[0], ref, ProgressStore(tmp_path / "p.db")))
    assert str(err.value).startswith(
        "PVC vms/web-disk-0 (68Mi requested, Filesystem mode) is full: the disk needs "
        f"{64 * MIB} bytes (64 MiB): no space left writing /dev/full"
    )
    assert [r.returncode for r in kubelet.runs] == [4]  # the pod failure policy: no retry


def test_halt_deletes_the_job_and_the_next_job_resumes(target, kubelet, source, tmp_path) -> None:
    ref, vm, info = source
    claims = allocate(target, vm)
    store = ProgressStore(tmp_path / "p.db")
    halt = threading.Event()
    progress = []

    def on_progress(p) -> None:
        progress.append(p)
        if p.bytes_done > 8 * MIB:  # past the hole at the start: copying data now
            halt.set()

    # 12 s of data at 1 MiB/s: the halt lands in it however late the log shows progress
    slow = request(
        vm, claims[0], ref, store, halt=halt, on_progress=on_progress,
        max_mibps=1.0, chunk_mib=1,
    )  # fmt: skip
    with pytest.raises(TransferCanceled):
        target.copy_disk(slow)
    assert progress and progress[-1].total == 64 * MIB  # read from the pod's log
    deadline = time.monotonic() + 120  # a safety net: the kubelet records the run it ended
    while kubelet.runs == []:
        assert time.monotonic() < deadline, "the kubelet never recorded the canceled run"
        time.sleep(0.05)
    assert kubelet.runs[0].returncode == 1 and '"Canceled"' in kubelet.runs[0].message
    assert target.api.get(f"/apis/batch/v1/namespaces/{NS}/jobs/web-disk-0-xfer") is None

    out = target.copy_disk(request(vm, claims[0], ref, store, chunk_mib=1))
    assert 0 < out.result.resumed_chunks < out.result.chunks_total
    assert out.result.target_digest == out.result.source_digest
    image = kubelet.storage(NS, "web-disk-0") / "disk.img"
    assert disk_digest_of_file(image) == info.disks[0].digest


def test_a_pvc_deleted_under_a_running_copy_is_noticed(target, kubelet, source, tmp_path) -> None:
    ref, vm, _ = source
    claims = allocate(target, vm)

    def delete_first(job: dict) -> bool:
        kubelet.before_run = None
        kubelet.delete_pvc_by_hand(NS, "web-disk-0")
        return False  # the pod never started

    kubelet.before_run = delete_first
    with pytest.raises(DiskLost, match=r"PVC vms/web-disk-0 was deleted while its disk"):
        target.copy_disk(request(vm, claims[0], ref, ProgressStore(tmp_path / "p.db")))
    assert not target.disk_exists(claims[0])
    target.ensure_disk(claims[0])
    assert target.disk_exists(claims[0])


def test_a_block_pvc_made_anew_starts_without_the_old_checkpoints(
    target, kubelet, source, tmp_path
) -> None:
    """A Block PVC deleted by hand leaves its ``-ckpt`` companion, whose records describe the
    device that is gone: the PVC made anew goes without them, so its Job copies from the start
    instead of resuming into a blank device."""
    ref, vm, _ = source
    claims = allocate(target, vm)
    block = claims[1]
    ckpt = f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{block.name}-ckpt"
    halt = threading.Event()

    def on_progress(p) -> None:
        if p.data_bytes_written > 0:
            halt.set()

    store = ProgressStore(tmp_path / "p.db")
    with pytest.raises(TransferCanceled):  # stopped midway: its checkpoints stay
        target.copy_disk(
            request(vm, block, ref, store, halt=halt, on_progress=on_progress, max_mibps=1.0)
        )
    target.ensure_disk(block)  # the PVC is there: its checkpoints stay with it
    assert target.api.get(ckpt) is not None
    kubelet.delete_pvc_by_hand(NS, block.name)
    assert target.api.get(ckpt) is not None  # the user deleted only the disk's PVC
    target.ensure_disk(block)
    assert target.disk_exists(block)
    assert target.api.get(ckpt) is None  # the next Job makes it anew, empty


def test_cleanup_and_delete_touch_only_what_carries_the_labels(
    target, cluster, source, tmp_path
) -> None:
    ref, vm, _ = source
    claims = allocate(target, vm)
    other = replace(vm, target_name="db", labels={**LABELS, "vmID": "vm-2"})
    other_claims = [
        replace(c, name=c.name.replace("web", "db"), manifest=_renamed(c.manifest, "db"))
        for c in disk_claims(other, STORAGE)
    ]
    for c in other_claims:
        target.ensure_disk(c)
    target.ensure_vm(vm_manifest(vm))
    target.ensure_vm(vm_manifest(other))
    assert target.cleanup(NS, {}) == 0  # never everything
    assert target.cleanup(NS, {"plan": "plan-a", "vmID": "vm-1"}) == 3
    assert cluster.names(f"/api/v1/namespaces/{NS}/persistentvolumeclaims") == [
        "db-disk-0",
        "db-disk-1",
    ]
    assert target.vm_names(NS) == {"db"}
    target.delete_disk(other_claims[0])
    target.delete_disk(claims[0])  # absent is fine
    target.delete_vm(NS, "db")
    target.delete_vm(NS, "db")
    assert cluster.names(f"/api/v1/namespaces/{NS}/persistentvolumeclaims") == ["db-disk-1"]
    assert target.vm_names(NS) == set()


def _renamed(manifest: dict, name: str) -> dict:
    m = copy.deepcopy(manifest)
    m["metadata"]["name"] = m["metadata"]["name"].replace("web", name)
    return m


def test_names_stay_dns_labels() -> None:
    long = DiskClaim("x" * 60 + "-disk-12", NS, MIB, {})
    assert len(transfer_name(long)) <= 63 and len(checkpoint_name(long)) <= 63
    assert transfer_name(long) != checkpoint_name(long)


def test_provider_secrets_are_read_from_the_cluster_and_overridden_by_file_and_env(
    cluster, tmp_path
) -> None:
    """In a pod, a Provider's spec.secret is the cluster's Secret; the secrets file and the
    environment still override single keys; a missing Secret says where it looked."""
    import base64

    from reconciler.secrets.resolver import SecretError, SecretResolver, env_name

    cluster.create(
        "/api/v1/namespaces/openshift-mtv/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "vcenter-creds", "namespace": "openshift-mtv"},
            "data": {
                "user": base64.b64encode(b"admin@vsphere.local").decode(),
                "password": base64.b64encode(b"s3cret-Pa55").decode(),
            },
        },
    )
    target = KubevirtTarget.from_url(cluster.url, TOKEN)
    override = {env_name("openshift-mtv", "vcenter-creds", "thumbprint"): "AA:BB"}
    resolver = SecretResolver(environ=override, cluster=target.read_secret)
    assert resolver.resolve("openshift-mtv", "vcenter-creds") == {
        "user": "admin@vsphere.local",
        "password": "s3cret-Pa55",
        "thumbprint": "AA:BB",
    }
    with pytest.raises(SecretError, match="create it in the cluster") as err:
        resolver.resolve("openshift-mtv", "nope")
    assert "s3cret" not in str(err.value)


def test_transfer_jobs_can_run_the_reconcilers_own_image(cluster) -> None:
    cluster.create(
        "/api/v1/namespaces/mtv-gitops/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "mtv-gitops-7d9f", "namespace": "mtv-gitops"},
            "spec": {"containers": [{"name": "reconciler", "image": "registry.example/mtv:1.2"}]},
        },
    )
    target = KubevirtTarget.from_url(cluster.url, TOKEN)
    assert target.pod_image("mtv-gitops", "mtv-gitops-7d9f") == "registry.example/mtv:1.2"
    assert target.pod_image("mtv-gitops", "gone") is None


def test_a_source_hosts_migration_network_reaches_the_transfer_job(source, tmp_path) -> None:
    """vSphere Host manifests: the Job is told each host's address and reads the host's own
    credentials by reference; no value is in the Job, the Secret holds them apart."""
    from reconciler.targets.base import HostRef
    from reconciler.targets.kubevirt.transfer_job import transfer_command, transfer_job

    ref, vm, _ = source
    host_secret = {"user": "root", "password": "esx-Secret-9"}
    with_hosts = replace(
        ref,
        hosts=(HostRef("host-21", "10.10.0.21", ("openshift-mtv", "esx-21"), host_secret),),
    )
    claim = disk_claims(vm, STORAGE)[0]
    req = request(vm, claim, with_hosts, ProgressStore(tmp_path / "p.db"))
    argv = transfer_command(req, "/data/disk.img", "/data/ckpt.db")
    assert argv[argv.index("--host") + 1] == "host-21=10.10.0.21"
    assert argv[argv.index("--host-secret") + 1] == "host-21=openshift-mtv/esx-21"
    told = TransferRequest.from_argv(argv[2:])  # as the command in the Job reads it
    assert told.copy == req.copy and told.hosts == {"host-21": "10.10.0.21"}
    assert told.provider == ref.key and told.secret == "openshift-mtv/ova-creds"
    job = transfer_job(req, "web-disk-0-xfer", JobSettings(image="x"), {})
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in e
    }
    assert env[env_name("openshift-mtv", "esx-21", "password")] == "host0-password"
    assert env[env_name("openshift-mtv", "ova-creds", "password")] == "password"
    assert "esx-Secret-9" not in str(job)
