"""Disk full: space reserved for VMs that run together, ENOSPC named, nothing half-written left."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.targets.base import TargetError
from reconciler.targets.local import LocalTarget
from reconciler.transfer.rawfile import RawDiskWriter
from tests.support.workspace import small_vm

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
