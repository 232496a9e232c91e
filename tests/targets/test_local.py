"""LocalTarget: the folder that plays the cluster; every ensure_* can run twice."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.planner.model import DiskPlan, NicPlan, VmPlan
from reconciler.targets.base import TargetError
from reconciler.targets.kubevirt.manifests import disk_claims, vm_manifest
from reconciler.targets.local import LABELS_FILE, LocalTarget
from reconciler.transfer.rawfile import allocated_bytes

GiB = 1024**3
MiB = 1024**2


def vm_plan(name: str = "web-01") -> VmPlan:
    return VmPlan(
        vm_id="vm-1",
        source_name="Web_01",
        target_name=name,
        namespace="vms",
        cpus=2,
        cores_per_socket=1,
        memory_mb=2048,
        firmware="bios",
        power_state="Off",
        guest_os="",
        disks=(
            DiskPlan("disk-0", 2 * GiB, f"{name}-disk-0", "fast", "ReadWriteOnce", "Filesystem"),
            DiskPlan("disk-1", 3 * MiB + 512, f"{name}-disk-1", "", "ReadWriteOnce", "Block"),
        ),
        nics=(NicPlan("nic-0", "00:50:56:00:00:01", "virtio", "network-1", "pod"),),
        labels={"plan": "p"},
    )


def read(path: Path):
    return YAML(typ="safe").load(path.read_text())


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_ensure_namespace_twice(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path / "cluster")
    t.ensure_namespace("vms", {"app.kubernetes.io/managed-by": "mtv-gitops"})
    path = tmp_path / "cluster/vms/namespace.yaml"
    first = path.read_text()
    assert read(path) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "vms", "labels": {"app.kubernetes.io/managed-by": "mtv-gitops"}},
    }
    t.ensure_namespace("vms", {"app.kubernetes.io/managed-by": "mtv-gitops"})
    assert path.read_text() == first


def test_ensure_disk_writes_pvc_and_sparse_image_once(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path)
    claims = disk_claims(vm_plan())
    for c in claims:
        assert not t.disk_exists(c)
        t.ensure_disk(c)
        assert t.disk_exists(c)
    img0 = tmp_path / "vms/disks/web-01-disk-0.img"
    img1 = tmp_path / "vms/disks/web-01-disk-1.img"
    assert img0.stat().st_size == 2 * GiB
    assert img1.stat().st_size == 3 * MiB + 512  # the logical size, not the PVC's rounding
    assert allocated_bytes(img0) == 0
    assert read(tmp_path / "vms/pvcs/web-01-disk-0.yaml") == claims[0].manifest

    with t.open_writer(claims[1]) as w:
        w.write(MiB, b"x" * 4096)
    before = snapshot(tmp_path)
    for c in claims:
        t.ensure_disk(c)  # a second pass keeps the copied data
    assert {k: v[0] for k, v in snapshot(tmp_path).items()} == {k: v[0] for k, v in before.items()}
    with t.open_reader(claims[1]) as r:
        assert r.read(MiB, 4096) == b"x" * 4096
    assert sorted(p.name for p in tmp_path.rglob("*.tmp")) == []


def test_ensure_disk_refuses_an_image_larger_than_the_source(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path)
    claim = disk_claims(vm_plan())[1]
    img = tmp_path / "vms/disks/web-01-disk-1.img"
    img.parent.mkdir(parents=True)
    with img.open("wb") as f:
        f.truncate(claim.size + 1)
    with pytest.raises(TargetError, match="web-01-disk-1.img is larger than the source disk"):
        t.ensure_disk(claim)


def test_ensure_disk_checks_the_pvc_manifest_first(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path)
    claim = disk_claims(vm_plan())[0]
    claim.manifest["spec"]["accessModes"] = "ReadWriteOnce"
    with pytest.raises(TargetError, match="spec.accessModes"):
        t.ensure_disk(claim)
    assert not (tmp_path / "vms").exists()


def test_ensure_vm_twice_and_read_it_back(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path)
    assert t.vm_names("vms") == set()
    assert t.get_vm("vms", "web-01") is None
    m = vm_manifest(vm_plan())
    t.ensure_vm(m)
    path = tmp_path / "vms/virtualmachines/web-01.yaml"
    text = path.read_text()
    t.ensure_vm(m)
    assert path.read_text() == text
    assert t.get_vm("vms", "web-01") == m
    t.ensure_vm(vm_manifest(vm_plan("db-01")))
    assert t.vm_names("vms") == {"web-01", "db-01"}
    assert t.locate("vms", "web-01") == {
        "manifest": str(path),
        "pvcs": str(tmp_path / "vms/pvcs"),
        "disks": str(tmp_path / "vms/disks"),
    }


def test_ensure_vm_refuses_an_invalid_manifest(tmp_path: Path) -> None:
    t = LocalTarget(tmp_path)
    m = vm_manifest(vm_plan())
    m["spec"]["runStrategy"] = "Sometimes"
    with pytest.raises(TargetError, match="VirtualMachine web-01: spec.runStrategy"):
        t.ensure_vm(m)
    assert t.vm_names("vms") == set()


def test_free_bytes_of_existing_and_future_root(tmp_path: Path) -> None:
    expected = shutil.disk_usage(tmp_path).free
    free = LocalTarget(tmp_path).free_bytes("vms")
    assert isinstance(free, int) and abs(free - expected) < 64 * MiB
    future = LocalTarget(tmp_path / "not" / "yet")
    assert abs(future.free_bytes("vms") - expected) < 64 * MiB
    assert not (tmp_path / "not").exists()


def test_root_is_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    t = LocalTarget(tmp_path / "link")
    assert t.root == real.resolve()
    assert t.describe() == f"local folder {real.resolve()}"


def test_cleanup_removes_the_conversion_folders_of_the_vm_it_names(tmp_path) -> None:
    """A plan archived or deleted takes its VMs' conversion logs with it, and only theirs."""
    target = LocalTarget(tmp_path)
    folders = {}
    for name, vm_id in (("web", "vm-1"), ("db", "vm-2")):
        folder = tmp_path / "vms" / "conversions" / name
        folder.mkdir(parents=True)
        (folder / "virt-v2v.log").write_text("log\n")
        labels = {"plan": "p-uid", "migration": "m-uid", "vmID": vm_id}
        (folder / LABELS_FILE).write_text(json.dumps(labels))
        folders[vm_id] = folder
    assert target.cleanup_temporaries("vms", {"plan": "p-uid", "vmID": "vm-1"}) == 1
    assert not folders["vm-1"].exists() and folders["vm-2"].exists()
    assert target.cleanup_temporaries("vms", {}) == 0
    assert target.cleanup_temporaries("other", {"plan": "p-uid"}) == 0
