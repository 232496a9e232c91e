"""Disk full: space reserved for VMs that run together, ENOSPC named, nothing half-written left."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.targets.base import TargetError
from reconciler.targets.local import LocalTarget
from reconciler.transfer.rawfile import RawDiskWriter
from tests.support.ova_damage import flip_in_vmdk, rewrite_ova
from tests.support.workspace import migration_yaml, plan_yaml, small_vm

MIB = 1024 * 1024
pytestmark = pytest.mark.integration


def _mount_tmpfs(folder: Path, mib: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own (tmpfs), unmounted afterwards."""
    folder = tmp_path / "small"
    _mount_tmpfs(folder, 4)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\xff" * 65536):
            pass
    except OSError:
        pass  # full
    finally:
        os.close(fd)


def test_enospc_while_copying_names_the_path_and_what_to_do(small_fs: Path) -> None:
    image = small_fs / "disk.img"
    writer = RawDiskWriter(image, 16 * MIB)
    with pytest.raises(OSError) as err:
        for i in range(8):
            writer.write(i * MIB, b"\xab" * MIB)
        writer.flush()
    text = str(err.value)
    assert str(image) in text and "no space left" in text and "free space there" in text


def test_a_manifest_that_cannot_be_written_leaves_no_temporary_file(small_fs: Path) -> None:
    target = LocalTarget(small_fs / "cluster")
    target.ensure_namespace("vms", {})
    _fill(small_fs)
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}
    manifest["metadata"]["annotations"] = {"pad": "x" * 200_000}  # bigger than what is left
    with pytest.raises(TargetError, match="no space left to write"):
        target.ensure_namespace("other", manifest["metadata"]["annotations"])
    assert not [p for p in small_fs.rglob("*") if p.name.endswith(".tmp")]


def test_two_vms_that_each_fit_alone_do_not_both_start(workspace_factory) -> None:
    ws = workspace_factory([small_vm("first", 1, data_mib=24), small_vm("second", 2, data_mib=24)])
    _mount_tmpfs(ws.cluster, 40)  # room for one VM's data, not for both
    try:
        proc = ws.reconcile(timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
        assert sorted(v["phase"] for v in vms.values()) == ["Completed", "Failed"], vms
        refused = next(v for v in vms.values() if v["phase"] == "Failed")
        assert refused["error"]["phase"] == "AllocateDisks", refused  # before any copy
        reason = " ".join(refused["error"]["reasons"])
        assert "not enough free space" in reason and "need 24 MB of data" in reason, reason
        assert not [p for p in ws.cluster.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", "-l", str(ws.cluster)], check=False)


def test_a_failed_vms_partial_image_is_kept_reported_and_counted(workspace_factory) -> None:
    """A VM that fails mid-copy keeps its partial image for resume; status says what it holds,
    and a VM of another plan refused for space is told that image is where the space went."""
    ws = workspace_factory([small_vm("broken", 1, data_mib=24)])
    ova = ws.ovas["broken"].path
    rewrite_ova(ova, lambda m, d: (m, d), manifest=False)  # so the copy starts, then fails
    flip_in_vmdk(ova, at=0.9)  # a damaged grain late in the disk: earlier chunks are written
    _mount_tmpfs(ws.cluster, 64)
    try:
        proc = ws.reconcile(timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        status = ws.status("plan", "demo-plan")["status"]
        [vm] = status["migration"]["vms"]
        assert vm["phase"] == "Failed" and vm["error"]["phase"] == "CopyDisks", vm
        [image] = ws.cluster.rglob("*.img")
        held = image.stat().st_blocks * 512
        assert held > 0, "the copy wrote nothing before the damaged grain"
        partial = vm["error"]["partialImages"]
        assert partial["disks"] == {image.stem: held} and partial["bytes"] == held, partial
        kept = next(c for c in status["conditions"] if c["type"] == "PartialImagesKept")
        assert kept["items"] == ["broken"] and kept["bytes"] == held, kept
        assert f"({held / MIB:.0f} MB)" in kept["message"]

        ws.add_ova(small_vm("other", 2, data_mib=24))
        used = shutil.disk_usage(ws.cluster).used
        subprocess.run(  # room for less than the other VM's 24 MiB, whatever the broken one left
            ["mount", "-o", f"remount,size={(used + 16 * MIB) // MIB}m", str(ws.cluster)],
            check=True,
        )
        ws.user_commit(
            {
                "plans/other-plan.yaml": plan_yaml("other-plan", ["other"]),
                "migrations/other-plan-1.yaml": migration_yaml("other-plan-1", "other-plan"),
            },
            "a second plan",
        )
        proc = ws.reconcile(timeout=600)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        [other] = ws.status("plan", "other-plan")["status"]["migration"]["vms"]
        reason = " ".join(other["error"]["reasons"])
        assert "not enough free space" in reason, reason
        assert (
            f"partial images of 1 failed VM(s) hold {held / MIB:.0f} MB there "
            f"(openshift-mtv/demo-plan/broken ({held / MIB:.0f} MB))"
        ) in reason, reason
        assert str(ws.cluster) in reason
    finally:
        subprocess.run(["umount", "-l", str(ws.cluster)], check=False)
