"""OVA integrity: manifest digests checked, sizes decided, damage and links named."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, build_ova, semi_random
from plugins.ova.plugin import OvaConnection
from reconciler.sources import SourceError
from tests.support.ova_damage import flip_in_vmdk, rewrite_ova

MIB = 1024 * 1024
pytestmark = pytest.mark.integration


def _build(folder: Path, name: str = "vm") -> Path:
    folder.mkdir(exist_ok=True)
    disk = DiskSpec(8 * MIB, [(MIB, semi_random(2 * MIB, 7))])
    return build_ova(folder / f"{name}.ova", name, disks=[disk]).path


def _only_vm(conn: OvaConnection):
    [vm] = conn.inventory().vms
    return vm


def test_a_damaged_disk_file_fails_its_manifest_digest(tmp_path: Path) -> None:
    ova = _build(tmp_path / "ovas")
    flip_in_vmdk(ova)
    conn = OvaConnection(tmp_path / "ovas")
    vm = _only_vm(conn)
    with pytest.raises(SourceError) as err:
        conn.open_disk(vm.id, vm.disks[0].key)
    text = str(err.value)
    assert str(ova) in text and "vm-disk1.vmdk" in text
    assert "does not match its SHA256 digest in vm.mf" in text


def test_an_intact_ova_passes_its_manifest(tmp_path: Path) -> None:
    _build(tmp_path / "ovas")
    conn = OvaConnection(tmp_path / "ovas")
    vm = _only_vm(conn)
    with conn.open_disk(vm.id, vm.disks[0].key) as reader:
        assert reader.size == 8 * MIB


def test_an_edited_descriptor_fails_its_manifest_digest(tmp_path: Path) -> None:
    ova = _build(tmp_path / "ovas")
    with tarfile.open(ova) as tar:
        ovf = next(m for m in tar if m.name.endswith(".ovf"))
    with ova.open("r+b") as f:  # same length: only the digest can tell
        f.seek(ovf.offset_data)
        head = f.read(ovf.size)
        f.seek(ovf.offset_data)
        f.write(head.replace(b"encoding='UTF-8'", b"encoding='utf-8'", 1))
    [vm] = OvaConnection(tmp_path / "ovas").inventory().vms
    [concern] = vm.concerns
    assert "vm.ovf does not match its SHA256 digest in vm.mf" in concern["assessment"]


def test_a_flipped_grain_without_a_manifest_names_file_disk_and_offset(tmp_path: Path) -> None:
    ova = _build(tmp_path / "ovas")
    rewrite_ova(ova, lambda m, d: (m, d), manifest=False)
    flip_in_vmdk(ova, at=0.6)
    conn = OvaConnection(tmp_path / "ovas")
    vm = _only_vm(conn)
    with pytest.raises(SourceError) as err:
        with conn.open_disk(vm.id, vm.disks[0].key) as reader:
            for offset in range(0, reader.size, MIB):
                reader.read(offset, MIB)
    text = str(err.value)
    assert str(ova) in text and "vm-disk1.vmdk" in text
    assert "reading 1048576 bytes at offset " in text and "damaged at that offset" in text


def test_a_vmdk_larger_than_the_ovf_declares_is_refused(tmp_path: Path) -> None:
    ova = _build(tmp_path / "ovas")
    declared = str(8 * MIB).encode()

    def shrink(m: tarfile.TarInfo, d: bytes):
        if m.name.endswith(".ovf"):
            assert declared in d
            d = d.replace(b'ovf:capacity="' + declared, b'ovf:capacity="' + str(4 * MIB).encode())
        return m, d

    rewrite_ova(ova, shrink)
    conn = OvaConnection(tmp_path / "ovas")
    vm = _only_vm(conn)
    with pytest.raises(SourceError, match=r"holds 8388608 bytes, more than the 4194304"):
        conn.open_disk(vm.id, vm.disks[0].key)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_a_linked_disk_file_is_named_as_a_link_and_refused(tmp_path: Path, kind: bytes) -> None:
    ova = _build(tmp_path / "ovas")

    def link(m: tarfile.TarInfo, d: bytes):
        if m.name.endswith(".vmdk"):
            m = tarfile.TarInfo(m.name)
            m.type, m.linkname = kind, "/etc/passwd"
            return m, b""
        return m, d

    rewrite_ova(ova, link)
    conn = OvaConnection(tmp_path / "ovas")
    vm = _only_vm(conn)
    what = "a symbolic link" if kind == tarfile.SYMTYPE else "a hard link"
    [concern] = vm.concerns
    assert f"is {what} to /etc/passwd in the archive, not a file" in concern["assessment"]
    with pytest.raises(SourceError, match=f"{what} to /etc/passwd"):
        conn.open_disk(vm.id, vm.disks[0].key)
