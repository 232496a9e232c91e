"""The OVA source plugin end to end: entry point, inventory, concerns, disk readers."""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path

import pluggy
import pytest

import reconciler.hookspecs
from plugins.ova.factory import DiskSpec, semi_random
from plugins.ova.plugin import DEFAULT_STORAGE_ID, OvaConnection, network_id
from reconciler.sources import SourceError

from .conftest import MiB, build_sample

pytestmark = pytest.mark.integration


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("mtv_gitops")
    pm.add_hookspecs(reconciler.hookspecs)
    pm.load_setuptools_entrypoints("mtv_gitops.sources")
    pm.check_pending()
    return pm


def _connect(url: str) -> OvaConnection:
    conn = _manager().hook.mtv_gitops_connect(
        provider_type="ova", url=url, secret={}, settings={}, hosts={}
    )
    assert isinstance(conn, OvaConnection)
    return conn


def test_found_through_entry_points(tmp_path: Path) -> None:
    pm = _manager()
    assert ["ova"] in pm.hook.mtv_gitops_source_types()
    assert (
        pm.hook.mtv_gitops_connect(provider_type="xen", url="x", secret={}, settings={}, hosts={})
        is None
    )
    assert _connect(str(tmp_path)).folder == tmp_path
    assert _connect(tmp_path.as_uri()).folder == tmp_path
    assert _connect(tmp_path.as_uri()).inventory().vms == []


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        _connect(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="file://"):  # nfs:// is a share since issue 22
        _connect("https://server/export")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Four OVAs: a good one, one in a subfolder with a UUID id, two broken ones, one junk."""
    root = tmp_path_factory.mktemp("ovas")
    built = {"web01": build_sample(root)}
    built["app02"] = build_sample(
        root,
        "app02",
        firmware="bios",
        cpus=1,
        cores_per_socket=1,
        memory_mb=512,
        disks=[DiskSpec(4 * MiB, writes=[(MiB, semi_random(MiB, 9))], bus="ide")],
        nics=[],
        system_id="4206c5b4-0d3a-4f4e-9a0e-1b6a1d2a3f00",
    )
    built["nodisk"] = build_sample(root, "nodisk", omit_disks=[1])
    built["short"] = build_sample(root, "short", truncate_disks={0: 4096})
    (root / "ovas" / "junk.ova").write_bytes(b"this is not a tar archive" * 100)
    sub = root / "ovas" / "team"
    sub.mkdir()
    (root / "ovas" / "app02.ova").rename(sub / "app02.ova")
    return root / "ovas", built


def test_inventory_matches_what_was_built(folder: tuple[Path, dict]) -> None:
    path, built = folder
    conn = OvaConnection(path)
    inv = conn.inventory()
    assert [vm.name for vm in inv.vms] == ["junk", "nodisk", "short", "app02", "web01"]
    web = inv.find_vm(name="web01")
    info = built["web01"]
    assert (web.cpus, web.cores_per_socket, web.memory_mb) == (4, 2, 3072)
    assert (web.firmware, web.guest_os, web.power_state) == ("efi", "rhel9_64Guest", "Off")
    assert web.concerns == ()
    assert [(d.key, d.capacity, d.file, d.bus, d.format) for d in web.disks] == [
        ("vmdisk1", 16 * MiB, info.disks[0].file, "scsi", "vmdk"),
        ("vmdisk2", 8 * MiB, info.disks[1].file, "sata", "vmdk"),
    ]
    assert [(n.mac, inv.find_network(id=n.network).name, n.model) for n in web.nics] == [
        ("00:50:56:aa:bb:01", "VM Network", "vmxnet3"),
        ("00:50:56:aa:bb:02", "Storage Net", "e1000"),
    ]
    assert sorted(n.name for n in inv.networks) == ["Storage Net", "VM Network"]  # deduplicated
    assert inv.find_storage(id=DEFAULT_STORAGE_ID).name == "Default"
    for d in web.disks:
        assert inv.find_storage(id=d.storage).name == d.file
    app = inv.find_vm(name="app02")
    assert app.id == "4206c5b4-0d3a-4f4e-9a0e-1b6a1d2a3f00"  # a UUID ovf:id is kept
    assert (app.firmware, app.cpus, app.memory_mb, app.disks[0].bus) == ("bios", 1, 512, "ide")
    # Ids are stable across connections (and therefore restarts).
    again = OvaConnection(path).inventory()
    assert [vm.id for vm in again.vms] == [vm.id for vm in inv.vms]
    assert uuid.UUID(web.id)
    assert network_id("VM Network") == inv.find_network(name="VM Network").id


def test_missing_and_truncated_disks_are_concerns(folder: tuple[Path, dict]) -> None:
    path, built = folder
    conn = OvaConnection(path)
    inv = conn.inventory()
    nodisk = inv.find_vm(name="nodisk")
    (concern,) = nodisk.concerns
    assert concern["category"] == "Critical"
    assert built["nodisk"].disks[1].file in concern["assessment"]
    assert "nodisk.ova" in concern["assessment"]
    with pytest.raises(SourceError) as err:
        conn.open_disk(nodisk.id, "vmdisk2")
    assert "nodisk.ova" in str(err.value) and built["nodisk"].disks[1].file in str(err.value)
    with conn.open_disk(nodisk.id, "vmdisk1") as r:  # the disk that is there still reads
        assert r.size == 16 * MiB

    short = inv.find_vm(name="short")
    (concern,) = short.concerns
    assert concern["label"] == "Disk file truncated"
    assert "4096 bytes" in concern["assessment"]
    with pytest.raises(SourceError, match="short.ova.*truncated"):
        conn.open_disk(short.id, "vmdisk1")

    junk = inv.find_vm(name="junk")
    assert junk.concerns[0]["label"] == "Invalid OVA"
    assert "junk.ova" in junk.concerns[0]["assessment"]
    conn.close()


def test_open_disk_reads_the_built_content(folder: tuple[Path, dict]) -> None:
    path, built = folder
    conn = OvaConnection(path)
    web = conn.inventory().find_vm(name="web01")
    readers = [conn.open_disk(web.id, d.key) for d in web.disks]
    for reader, disk in zip(readers, built["web01"].disks, strict=True):
        assert reader.read(0, reader.size) == disk.raw_path.read_bytes()
    with pytest.raises(SourceError, match="no disk"):
        conn.open_disk(web.id, "vmdisk9")
    with pytest.raises(SourceError, match="no VM"):
        conn.open_disk("nope", "vmdisk1")
    conn.close()
    assert all(r.closed for r in readers)


def test_validation_input_is_forklift_shaped(folder: tuple[Path, dict]) -> None:
    path, built = folder
    conn = OvaConnection(path)
    web = conn.inventory().find_vm(name="web01")
    doc = conn.validation_input(web.id)
    assert doc["id"] == web.id and doc["name"] == "web01"
    assert doc["path"] == "web01.ova" and doc["ovaSource"] == "VMware"
    assert (doc["cpuCount"], doc["coresPerSocket"], doc["memoryMB"]) == (4, 2, 3072)
    assert (doc["firmware"], doc["osType"], doc["powerState"]) == ("efi", "rhel9_64Guest", "Off")
    assert [d["capacity"] for d in doc["disks"]] == [16 * MiB, 8 * MiB]
    assert doc["disks"][0]["file"] == built["web01"].disks[0].file
    assert doc["disks"][0]["filePath"].endswith("web01.ova")
    assert doc["nics"][0]["mac"] == "00:50:56:aa:bb:01"
    assert doc["nics"][0]["network"]["id"] == network_id("VM Network")
    assert {n["name"] for n in doc["networks"]} == {"VM Network", "Storage Net"}
    assert doc["concerns"] == []
    assert conn.power_state(web.id) == "Off"
    conn.power_off(web.id, timeout=1)
    conn.power_on(web.id)


def test_rescan_sees_new_and_removed_files(tmp_path: Path) -> None:
    conn = OvaConnection(tmp_path)
    assert conn.inventory().vms == []
    build_sample(tmp_path, "late", keep_raw_dir=None)
    (vm,) = conn.inventory().vms
    assert vm.name == "late"
    (tmp_path / "ovas" / "late.ova").unlink()
    assert conn.inventory().vms == []


def test_compressed_disk_file_is_a_concern(tmp_path: Path) -> None:
    """gzip-compressed members cannot be read in place: the VM says so, open_disk refuses."""
    info = build_sample(tmp_path, "gz", keep_raw_dir=None)
    with tarfile.open(info.path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    href = info.disks[0].file.encode()
    with tarfile.open(info.path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for m, data in members:
            if m.name.endswith(".mf"):
                continue  # the edited OVF no longer matches it (a manifest is optional)
            if m.name.endswith(".ovf"):
                data = data.replace(
                    b'href="' + href + b'"', b'href="' + href + b'" ovf:compression="gzip"'
                )
                m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    conn = OvaConnection(tmp_path / "ovas")
    (vm,) = conn.inventory().vms
    assert [c["label"] for c in vm.concerns] == ["Unsupported disk file"]
    with pytest.raises(SourceError, match="gzip-compressed"):
        conn.open_disk(vm.id, "vmdisk1")
