"""The contract every Target keeps (``reconciler/targets/base.py``), run against each one.

Each target is one fixture below, decorated with ``@target_fixture``: it builds the target on
its real peer (a folder for ``local``; kmock's emulated API server and the kubelet the tests
play for it, from tests/conftest.py, for ``kubevirt``) and says how to read back what a PVC
holds, in a :class:`TargetUnderTest`.  Every test here then runs once per target.  **A new
target gets the whole suite by adding one such fixture.**

What is checked, with one real OVA as the source:

- namespaces and disks are allocated idempotently (``ensure_*`` twice, ``disk_exists``);
- a copy writes the source's bytes (digests and a read-back), and a second copy of the same
  disk resumes all of it;
- the VirtualMachine is created idempotently and holds what the plan says: CPU, memory, one
  disk per PVC, NICs with the source's MACs;
- releasing, deleting and cleaning up are idempotent, and cleanup removes only what carries
  every label asked for (never everything).

Targets are imported by their stable public names only (``reconciler.targets.<target>``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, NicSpec, OvaInfo, build_ova, semi_random
from reconciler.planner.model import DiskPlan, NicPlan, VmPlan
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.targets.base import CopyRequest, DiskClaim, SourceRef, Target
from reconciler.targets.kubevirt.manifests import StorageSettings, disk_claims, vm_manifest
from reconciler.targets.kubevirt.target import KubevirtTarget
from reconciler.targets.kubevirt.transfer_job import JobSettings
from reconciler.targets.local import LocalTarget
from reconciler.transfer.request import DiskCopy
from tests.support.cluster import TOKEN, Cluster, Kubelet

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
NS = "contract-vms"
LABELS = {
    "plan": "plan-c",
    "migration": "plan-c-1",
    "vmID": "vm-c",
    "app.kubernetes.io/managed-by": "mtv-gitops",
}
STORAGE = StorageSettings(provisioners={"standard": "kubernetes.io/hostpath-provisioner"})


@dataclass
class TargetUnderTest:
    """A target, and how to read what one of its PVCs holds without the target's help."""

    name: str
    target: Target
    read_back: Callable[[DiskClaim], bytes]


TARGETS: list[str] = []  # the fixtures' names, filled by @target_fixture


def target_fixture(fn: Callable[..., Iterator[TargetUnderTest]]):
    """Register one target's fixture: every contract test runs against it."""
    TARGETS.append(fn.__name__)
    return pytest.fixture(fn)


@target_fixture
def local(tmp_path: Path) -> Iterator[TargetUnderTest]:
    """The embedded target: a folder that plays the cluster; disks are sparse raw images."""
    root = tmp_path / "cluster"
    yield TargetUnderTest(
        "local",
        LocalTarget(root),
        lambda c: (root / c.namespace / "disks" / f"{c.name}.img").read_bytes(),
    )


@target_fixture
def kubevirt(cluster: Cluster, kubelet: Kubelet) -> Iterator[TargetUnderTest]:
    """A cluster's API server (kmock's emulator); the test kubelet runs the transfer Jobs
    and keeps each PVC's storage in a folder."""
    target = KubevirtTarget.from_url(
        cluster.url, TOKEN, settings=JobSettings(image="example.org/mtv:1", poll_seconds=0.05)
    )
    yield TargetUnderTest(
        "kubevirt",
        target,
        lambda c: (kubelet.storage(c.namespace, c.name) / "disk.img").read_bytes(),
    )


@pytest.fixture(params=TARGETS)
def under_test(request: pytest.FixtureRequest) -> TargetUnderTest:
    return request.getfixturevalue(request.param)


@dataclass(frozen=True)
class Source:
    ref: SourceRef
    vm: VmPlan
    info: OvaInfo
    raw: dict[str, bytes]  # PVC name -> the disk's logical content


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """One OVA VM with two disks and two NICs, planned as the planner would."""
    folder = tmp_path_factory.mktemp("target-contract")
    (folder / "ova").mkdir()
    info = build_ova(
        folder / "ova" / "app.ova",
        "app",
        cpus=4,
        cores_per_socket=2,
        memory_mb=3072,
        firmware="efi",
        disks=[
            DiskSpec(16 * MiB, [(MiB, semi_random(3 * MiB, 21))]),
            DiskSpec(8 * MiB + 4096, [(8 * MiB, semi_random(4096, 22))]),
        ],
        nics=[NicSpec("VM Network", "00:50:56:0c:00:01"), NicSpec("backend", "00:50:56:0c:00:02")],
        keep_raw_dir=folder / "raw",
    )
    conn = connect("ova", str(folder / "ova"), {}, {})
    (inv_vm,) = conn.inventory().vms
    conn.close()
    disks = tuple(
        DiskPlan(d.key, d.capacity, f"app-disk-{i}", "standard", "ReadWriteOnce", "Filesystem")
        for i, d in enumerate(inv_vm.disks)
    )
    vm = VmPlan(
        vm_id=inv_vm.id,
        source_name="app",
        target_name="app",
        namespace=NS,
        cpus=4,
        cores_per_socket=2,
        memory_mb=3072,
        firmware="efi",
        power_state="On",
        guest_os="",
        disks=disks,
        nics=(
            NicPlan("nic-0", "00:50:56:0c:00:01", "virtio", "n-1", "pod"),
            NicPlan("nic-1", "00:50:56:0c:00:02", "e1000e", "n-2", "multus", f"{NS}/backend"),
        ),
        labels=dict(LABELS),
    )
    raw = {}
    for plan, built in zip(disks, info.disks, strict=True):
        assert built.raw_path is not None
        raw[plan.pvc_name] = built.raw_path.read_bytes()
    ref = SourceRef("openshift-mtv", "ova-files", "ova", str(folder / "ova"), {"streams": "2"})
    return Source(ref, vm, info, raw)


def _request(src: Source, claim: DiskClaim, store: ProgressStore) -> CopyRequest:
    disk = next(d for d in src.vm.disks if d.pvc_name == claim.name)

    def open_source():
        conn = connect("ova", src.ref.url, {}, {})
        return _OwningReader(conn, conn.open_disk(src.vm.vm_id, disk.key))

    return CopyRequest(
        claim=claim,
        copy=DiskCopy(vm_id=src.vm.vm_id, disk_key=disk.key, streams=2),
        disk_id=f"plan-c/{src.vm.vm_id}/{claim.name}",
        labels={**src.vm.labels, "vmDisk": disk.key},
        source=src.ref,
        open_source=open_source,
        store=store,
        on_progress=lambda p: None,
        halt=threading.Event(),
    )


class _OwningReader:
    """A disk reader that closes its own connection with it."""

    def __init__(self, conn, reader) -> None:
        self.conn, self.reader, self.size = conn, reader, reader.size

    def extents(self):
        return self.reader.extents()

    def read(self, offset: int, length: int) -> bytes:
        return self.reader.read(offset, length)

    def close(self) -> None:
        self.reader.close()
        self.conn.close()


def _allocate(t: Target, src: Source) -> list[DiskClaim]:
    t.ensure_namespace(NS, {"app.kubernetes.io/managed-by": "mtv-gitops"})
    claims = disk_claims(src.vm, STORAGE)
    for claim in claims:
        t.ensure_disk(claim)
    return claims


# -- the contract ---------------------------------------------------------------------------


def test_namespace_and_disks_are_allocated_idempotently(
    under_test: TargetUnderTest, source: Source
) -> None:
    t = under_test.target
    assert under_test.target.describe()
    t.ensure_namespace(NS, {"app.kubernetes.io/managed-by": "mtv-gitops"})
    t.ensure_namespace(NS, {"app.kubernetes.io/managed-by": "mtv-gitops"})
    claims = disk_claims(source.vm, STORAGE)
    assert [c.name for c in claims] == ["app-disk-0", "app-disk-1"]
    for claim in claims:
        assert not t.disk_exists(claim)
        t.ensure_disk(claim)
        t.ensure_disk(claim)
        assert t.disk_exists(claim)
    assert t.vm_names(NS) == set()


def test_a_copy_writes_the_source_and_a_second_copy_resumes_it_all(
    under_test: TargetUnderTest, source: Source, tmp_path: Path
) -> None:
    t = under_test.target
    claims = _allocate(t, source)
    store = ProgressStore(tmp_path / "progress.db")
    try:
        for claim, built in zip(claims, source.info.disks, strict=True):
            out = t.copy_disk(_request(source, claim, store)).result
            assert out.source_digest == out.target_digest == built.digest
            assert out.resumed_chunks == 0
            held = under_test.read_back(claim)
            assert held[: claim.size] == source.raw[claim.name]
            assert not any(held[claim.size :])  # a PVC may be larger; the rest reads as zeros
            t.ensure_disk(claim)  # allocating again keeps the data
            assert under_test.read_back(claim)[: claim.size] == source.raw[claim.name]

            again = t.copy_disk(_request(source, claim, store)).result
            assert again.resumed_chunks == again.chunks_total == out.chunks_total
            assert again.target_digest == built.digest
    finally:
        store.close()


def test_the_vm_is_created_idempotently_with_cpu_memory_disks_and_nics(
    under_test: TargetUnderTest, source: Source
) -> None:
    t = under_test.target
    claims = _allocate(t, source)
    manifest = vm_manifest(source.vm)
    t.ensure_vm(manifest)
    t.ensure_vm(manifest)
    assert t.vm_names(NS) == {"app"}
    got = t.get_vm(NS, "app")
    assert got is not None and got["kind"] == "VirtualMachine"
    assert got["metadata"]["name"] == "app" and got["metadata"]["namespace"] == NS
    assert LABELS.items() <= got["metadata"]["labels"].items()
    spec = got["spec"]["template"]["spec"]
    cpu = spec["domain"]["cpu"]
    assert cpu["sockets"] * cpu["cores"] * cpu.get("threads", 1) == source.vm.cpus
    assert cpu["cores"] == source.vm.cores_per_socket
    assert spec["domain"]["memory"]["guest"] == f"{source.vm.memory_mb}Mi"
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]}
    disks = [volumes[d["name"]] for d in spec["domain"]["devices"]["disks"]]
    assert disks == [c.name for c in claims]
    macs = [i.get("macAddress") for i in spec["domain"]["devices"]["interfaces"]]
    assert macs == [n.mac for n in source.vm.nics]
    networks = [n["name"] for n in spec["networks"]]
    assert networks == [i["name"] for i in spec["domain"]["devices"]["interfaces"]]
    assert got["spec"]["runStrategy"] == "Always"  # the source ran
    assert t.locate(NS, "app")


def test_release_delete_and_cleanup_are_idempotent_and_keep_what_is_not_theirs(
    under_test: TargetUnderTest, source: Source
) -> None:
    t = under_test.target
    claims = _allocate(t, source)
    t.ensure_vm(vm_manifest(source.vm))
    for claim in claims:
        t.release_disk(claim)
        t.release_disk(claim)
        assert t.disk_exists(claim)  # released: the VM keeps its disk
    assert t.cleanup(NS, {}) == 0  # an empty selector removes nothing
    assert t.cleanup(NS, {**LABELS, "vmID": "another-vm"}) == 0
    assert t.cleanup(NS, {"plan": LABELS["plan"], "vmID": LABELS["vmID"]}) == len(claims) + 1
    assert t.cleanup(NS, {"plan": LABELS["plan"], "vmID": LABELS["vmID"]}) == 0
    assert not any(t.disk_exists(c) for c in claims)
    assert t.get_vm(NS, "app") is None and t.vm_names(NS) == set()
    for claim in claims:
        t.delete_disk(claim)  # absent is fine
    t.delete_vm(NS, "app")

    claims = _allocate(t, source)  # and once more through the single deletes
    t.ensure_vm(vm_manifest(source.vm))
    t.delete_vm(NS, "app")
    t.delete_vm(NS, "app")
    for claim in claims:
        t.delete_disk(claim)
        t.delete_disk(claim)
        assert not t.disk_exists(claim)
    assert t.vm_names(NS) == set()
