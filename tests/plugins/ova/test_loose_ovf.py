"""Folders holding a loose ``.ovf`` with its disks next to it (an OVA unpacked in place), which
Forklift's OVA provider also serves: the same VM, disks and manifest checks as the OVA, locally
and on the NFS share, through the same reader interface."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from plugins.ova.plugin import OvaConnection, mtv_gitops_connect
from reconciler.sources import SourceError

from .conftest import build_sample

pytestmark = pytest.mark.integration
UUID = "0d5e3c2b-1a4f-4e6d-9c8b-7a6f5e4d3c2b"


def unpack(ova: Path, folder: Path) -> Path:
    """``tar xf`` the OVA into ``folder`` (world-readable, as a share needs); its ``.ovf``."""
    folder.mkdir(parents=True)
    with tarfile.open(ova) as tar:
        tar.extractall(folder, filter="data")
    for p in [folder, *folder.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    [ovf] = folder.glob("*.ovf")
    return ovf


def _same_vm(conn: OvaConnection, ova: OvaConnection) -> None:
    """The loose OVF's VM is the OVA's: hardware, disks and every byte of them."""
    [vm], [want] = conn.inventory().vms, ova.inventory().vms
    assert vm.id == want.id == UUID  # a UUID ovf:id is the VM id either way, as in Forklift
    assert (vm.name, vm.cpus, vm.memory_mb, vm.firmware, vm.nics) == (
        want.name, want.cpus, want.memory_mb, want.firmware, want.nics,
    )  # fmt: skip
    assert [(d.key, d.capacity, d.file, d.bus) for d in vm.disks] == [
        (d.key, d.capacity, d.file, d.bus) for d in want.disks
    ]
    assert vm.concerns == ()
    for d in vm.disks:
        with conn.open_disk(vm.id, d.key) as r, ova.open_disk(want.id, d.key) as w:
            assert (r.size, list(r.extents())) == (w.size, list(w.extents()))
            assert r.read(0, r.size) == w.read(0, w.size)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("loose"), "web01", system_id=UUID).path


def test_a_loose_ovf_is_the_vm_of_its_ova(built: Path, tmp_path: Path) -> None:
    ovf = unpack(built, tmp_path / "share" / "web01")
    conn, ova = OvaConnection(tmp_path / "share"), OvaConnection(built.parent)
    try:
        _same_vm(conn, ova)
        [vm] = conn.inventory().vms
        assert conn.validation_input(vm.id)["ovaPath"] == str(ovf)
    finally:
        conn.close()
        ova.close()


def test_a_loose_ovf_is_followed_and_its_manifest_checked(built: Path, tmp_path: Path) -> None:
    ovf = unpack(built, tmp_path / "vm")
    conn = OvaConnection(tmp_path)
    try:
        [vm] = conn.inventory().vms
        disk = vm.disks[0]
        vmdk = ovf.parent / disk.file
        data = bytearray(vmdk.read_bytes())
        data[1000] ^= 0xFF  # damaged in place: same size, a new mtime
        vmdk.write_bytes(bytes(data))
        with pytest.raises(SourceError, match="changed since it was scanned"):
            conn.open_disk(vm.id, disk.key)
        [vm] = conn.inventory().vms  # the next pass reads the OVF's files again
        with pytest.raises(SourceError, match=r"does not match its SHA256 digest in web01\.mf"):
            conn.open_disk(vm.id, disk.key)
        vmdk.write_bytes(bytes(data[: len(data) // 2]))
        [vm] = conn.inventory().vms
        assert [c["label"] for c in vm.concerns] == ["Disk file truncated"]
        vmdk.unlink()
        [vm] = conn.inventory().vms
        assert [c["label"] for c in vm.concerns] == ["Disk file missing"]
        assert "its folder does not contain it" in vm.concerns[0]["assessment"]
        ovf.unlink()
        assert conn.inventory().vms == []
    finally:
        conn.close()


def test_a_loose_ovf_on_the_share_reads_as_locally(built: Path, nfs_server) -> None:
    folder = nfs_server.export / "loose"
    unpack(built, folder / "web01")
    folder.chmod(0o755)
    conn = mtv_gitops_connect(
        provider_type="ova", url=f"127.0.0.1:{folder}", secret={}, settings={}
    )
    ova = OvaConnection(built.parent)
    assert isinstance(conn, OvaConnection)
    try:
        _same_vm(conn, ova)
        [vm] = conn.inventory().vms
        assert conn.validation_input(vm.id)["ovaPath"] == f"127.0.0.1:{folder}/web01/web01.ovf"
    finally:
        conn.close()
        ova.close()
