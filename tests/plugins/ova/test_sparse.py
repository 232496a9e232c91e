"""SparseVmdkReader: VMDKs made by qemu-img, decoded in process, against qemu's own reading."""

from __future__ import annotations

import random
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plugins.ova.factory import OvaInfo
from plugins.ova.reader import VmdkReader, open_member
from plugins.ova.sparse import NotSparse, SparseVmdkReader
from reconciler.sources import SourceError
from reconciler.transfer.digest import disk_digest_of_reader

from .conftest import MiB

pytestmark = pytest.mark.integration


def _member(ova: Path, name: str) -> tarfile.TarInfo:
    with tarfile.open(ova) as tar:
        return tar.getmember(name)


def _open(info: OvaInfo, index: int) -> SparseVmdkReader:
    m = _member(info.path, info.disks[index].file)
    return SparseVmdkReader(info.path, m.offset_data, m.size, member_name=m.name)


@pytest.mark.parametrize("index", [0, 1])
def test_reads_and_maps_like_qemu(sample_ova: OvaInfo, index: int) -> None:
    """Every byte, random unaligned reads from threads, and the extent map equal qemu's."""
    disk = sample_ova.disks[index]
    raw = disk.raw_path.read_bytes()
    m = _member(sample_ova.path, disk.file)
    with _open(sample_ova, index) as r, VmdkReader(sample_ova.path, m.offset_data, m.size) as q:
        assert r.size == q.size == len(raw)
        assert list(r.extents()) == list(q.extents())
        assert r.read(0, r.size) == raw
        rng = random.Random(index)
        spans = [(rng.randrange(r.size), rng.randrange(1, 300_000)) for _ in range(200)]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda s: r.read(*s), spans))
        assert got == [raw[o : o + n] for o, n in spans]
        buf = bytearray(b"\xff" * (2 * MiB))  # readinto writes the holes too
        assert r.readinto(0, buf) == len(buf) and buf == raw[: 2 * MiB]
        assert r.read(r.size - 10, 100) == raw[-10:] and r.read(r.size, 10) == b""
        assert disk_digest_of_reader(r) == disk.digest


def test_open_member_decodes_sparse_vmdks_and_falls_back_to_qemu(sample_ova: OvaInfo) -> None:
    m = _member(sample_ova.path, sample_ova.disks[0].file)
    with open_member(sample_ova.path, m.offset_data, m.size, member_name=m.name) as r:
        assert isinstance(r, SparseVmdkReader)
    ovf = _member(sample_ova.path, "web01.ovf")
    with pytest.raises(NotSparse):
        SparseVmdkReader(sample_ova.path, ovf.offset_data, ovf.size)


def test_monolithic_sparse_vmdk(tmp_path: Path) -> None:
    """An uncompressed hosted sparse VMDK (qemu-img's default subformat) reads the same."""
    raw = tmp_path / "d.raw"
    data = random.Random(5).randbytes(300_000)
    with open(raw, "wb") as f:
        f.truncate(8 * MiB)
        f.seek(3 * MiB + 512)
        f.write(data)
    vmdk = tmp_path / "d.vmdk"
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", str(raw), str(vmdk)], check=True)
    with SparseVmdkReader(vmdk, 0, vmdk.stat().st_size) as r:
        assert r.compressed is False
        assert r.read(0, r.size) == raw.read_bytes()
        assert [e.zero for e in r.extents()] == [True, False, True]


def test_truncated_member_fails_when_opened(sample_ova: OvaInfo) -> None:
    m = _member(sample_ova.path, sample_ova.disks[0].file)
    with pytest.raises(SourceError) as err:
        SparseVmdkReader(
            sample_ova.path, m.offset_data, m.size // 2 // 512 * 512, member_name=m.name
        )
    text = str(err.value)
    assert str(sample_ova.path) in text and m.name in text and "truncated" in text


def test_a_damaged_grain_fails_its_read_with_the_offset(
    sample_ova: OvaInfo, tmp_path: Path
) -> None:
    """A flipped byte inside a compressed grain fails the read of that grain, not silently."""
    ova = tmp_path / "copy.ova"
    ova.write_bytes(sample_ova.path.read_bytes())
    m = _member(ova, sample_ova.disks[0].file)
    with SparseVmdkReader(ova, m.offset_data, m.size) as r:
        first = next(e for e in r.extents() if not e.zero)
        at = r.entries[first.start // r.grain] * 512 + 12 + 40  # inside the deflate stream
    with ova.open("r+b") as f:
        f.seek(m.offset_data + at)
        byte = f.read(1)
        f.seek(m.offset_data + at)
        f.write(bytes([byte[0] ^ 0xFF]))
    with SparseVmdkReader(ova, m.offset_data, m.size, member_name=m.name) as r:
        with pytest.raises(SourceError) as err:
            r.read(first.start, MiB)
    assert f"reading {MiB} bytes at offset {first.start}" in str(err.value)
    assert "damaged at that offset" in str(err.value)


def test_a_delta_disk_is_left_to_qemu(tmp_path: Path) -> None:
    """A sparse VMDK naming a parent reads through it: not decoded here (qemu says what is
    missing), never read as if its unwritten grains were zeros."""
    base, delta = tmp_path / "base.vmdk", tmp_path / "delta.vmdk"
    subprocess.run(["qemu-img", "create", "-f", "vmdk", str(base), "8M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-f", "vmdk", "-b", str(base), "-F", "vmdk", str(delta)],
        check=True,
    )
    with pytest.raises(NotSparse):
        SparseVmdkReader(delta, 0, delta.stat().st_size)
