"""OVA providers on an NFS share (issue 22), against a real nfs-ganesha on 127.0.0.1: both url
forms, inventory and disk reads identical to the local folder's, the share followed without a
restart, and the errors a user can act on."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plugins.ova import libnfs
from plugins.ova.factory import DiskSpec, build_ova
from plugins.ova.plugin import OvaConnection, mtv_gitops_connect
from plugins.ova.share import NfsFolder, NfsLocation, _LibnfsFile, parse_nfs
from reconciler.sources import SourceError

from .conftest import build_sample

pytestmark = pytest.mark.integration


def _connect(url: str) -> OvaConnection:
    conn = mtv_gitops_connect(provider_type="ova", url=url, secret={}, settings={})
    assert isinstance(conn, OvaConnection)
    return conn


def test_url_forms() -> None:
    assert parse_nfs("10.10.0.10:/ova") == NfsLocation("10.10.0.10", "/ova")
    assert parse_nfs("nfs://10.10.0.10/ova/") == NfsLocation("10.10.0.10", "/ova")
    assert parse_nfs("nfs://nas.example:2049/exports/ova") == NfsLocation(
        "nas.example", "/exports/ova", 2049
    )
    for local in ("/srv/ova", "./ova", "file:///srv/ova", "ova", "C"):
        assert parse_nfs(local) is None


@pytest.fixture(scope="module")
def share(nfs_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two OVAs on the share (one in a sub-folder), and the same files locally."""
    folder = nfs_server.export / "plugin"
    (folder / "sub").mkdir(parents=True)
    build_sample(folder, "web01")
    build_sample(folder / "sub", "db01", system_id="6f1e2d3c-4b5a-4d6e-8f70-8192a3b4c5d6")
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return folder


def test_inventory_and_disks_match_the_local_folder(share: Path, nfs_server) -> None:
    for url in (f"127.0.0.1:{share}", f"nfs://127.0.0.1{share}"):
        remote, local = _connect(url), OvaConnection(share)
        try:
            rinv, linv = remote.inventory(), local.inventory()
            assert [v.name for v in rinv.vms] == ["web01", "db01"]  # by path: sub/ after web01
            assert rinv == linv
            vm = next(v for v in rinv.vms if v.name == "web01")
            rin = remote.validation_input(vm.id)
            assert rin["ovaPath"] == f"127.0.0.1:{share}/ovas/web01.ova"
            for d in vm.disks:
                with remote.open_disk(vm.id, d.key) as r, local.open_disk(vm.id, d.key) as lr:
                    assert r.size == lr.size
                    assert list(r.extents()) == list(lr.extents())
                    assert r.read(0, r.size) == lr.read(0, lr.size)
        finally:
            remote.close()
            local.close()


def test_a_new_ova_on_the_share_shows_up_without_a_restart(share: Path, nfs_server) -> None:
    conn = _connect(f"127.0.0.1:{share}")
    try:
        before = {v.name for v in conn.inventory().vms}
        listed = dict(conn._listings)
        assert conn.inventory() is not None and conn._listings == listed  # nothing moved
        late = build_sample(share / "sub", "late").path
        late.chmod(0o644)
        assert {v.name for v in conn.inventory().vms} == before | {"late"}
        late.unlink()
        assert {v.name for v in conn.inventory().vms} == before
    finally:
        conn.close()


def test_unreachable_server_names_the_share() -> None:
    with pytest.raises(SourceError, match=r"cannot reach the NFS share 127\.0\.0\.2:/ova"):
        NfsFolder(NfsLocation("127.0.0.2", "/ova"))


def test_export_not_found_lists_the_exports(nfs_server) -> None:
    with pytest.raises(SourceError) as e:
        _connect("127.0.0.1:/no/such/export")
    assert "does not export /no/such/export" in str(e.value)
    assert str(nfs_server.export) in str(e.value) and str(nfs_server.squashed) in str(e.value)


def test_root_squash_says_what_the_share_must_allow(nfs_server, tmp_path: Path) -> None:
    folder = nfs_server.squashed
    shutil.copy(build_sample(tmp_path, "private").path, folder / "private.ova")
    (folder / "private.ova").chmod(0o600)  # root's file; root is squashed to nobody
    conn = _connect(f"127.0.0.1:{folder}")
    try:
        [vm] = conn.inventory().vms
        assert vm.concerns[0]["label"] == "Invalid OVA"
        message = vm.concerns[0]["assessment"]
        assert "permission denied" in message and "squashes root" in message
        assert "world-readable" in message and f"127.0.0.1:{folder}/private.ova" in message
    finally:
        conn.close()


@pytest.fixture(scope="module")
def blob(nfs_server) -> tuple[Path, bytes]:
    """A file on the share that is not a multiple of any read size (libnfs reads 1 MiB)."""
    folder = nfs_server.export / "blob"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o755)
    data = os.urandom(3 * 1024 * 1024 + 4321)
    (folder / "blob.bin").write_bytes(data)
    (folder / "blob.bin").chmod(0o644)
    return folder, data


@pytest.mark.parametrize("use_libnfs", [True, False], ids=["libnfs", "nfs-rs"])
def test_both_nfs_clients_read_the_same_bytes(blob, use_libnfs: bool) -> None:
    """Reads go through libnfs where it is installed, else nfs-rs: the same bytes at any
    offset and length, short only at the end, from several threads at once."""
    if use_libnfs and libnfs.library() is None:
        pytest.skip(f"{libnfs.SONAME} is not installed")
    folder, data = blob
    share = NfsFolder(NfsLocation("127.0.0.1", str(folder)), use_libnfs=use_libnfs)
    f = share.open("blob.bin")
    try:
        assert f.size == len(data)
        assert isinstance(f, _LibnfsFile) == use_libnfs
        buf = bytearray(2 * 1024 * 1024 + 7)
        assert f.readinto(123, buf) == len(buf) and bytes(buf) == data[123 : 123 + len(buf)]
        assert f.readinto(len(data) - 10, buf) == 10 and bytes(buf[:10]) == data[-10:]
        assert f.readinto(len(data), buf) == 0

        def piece(i: int) -> bool:
            out = bytearray(1024 * 1024 + 1)
            at = i * 300_001
            n = f.readinto(at, out)
            return bytes(out[:n]) == data[at : at + n] and n == min(len(out), len(data) - at)

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(piece, range(10)))
    finally:
        f.close()
        share.close()


def test_a_libnfs_read_connects_again_after_the_server_restarts(blob, nfs_server) -> None:
    """A read on a connection the server dropped connects again and goes on (a hard mount's
    retry); a server that stays away fails the read once ``retry_seconds`` have passed."""
    if libnfs.library() is None:
        pytest.skip(f"{libnfs.SONAME} is not installed")
    folder, data = blob
    f = libnfs.LibnfsFile("127.0.0.1", str(folder), "blob.bin", len(data), retry_seconds=0.5)
    try:
        buf = bytearray(100_000)
        assert f.readinto(0, buf) == len(buf)
        nfs_server.stop()
        with pytest.raises(ConnectionError):
            f.readinto(0, buf)
        nfs_server.start()
        assert f.readinto(5000, buf) == len(buf) and bytes(buf) == data[5000:105_000]
    finally:
        f.close()
        if nfs_server.proc is None:
            nfs_server.start()


def test_long_spans_from_the_share_decode_as_locally(nfs_server) -> None:
    """Incompressible data makes the compressed grains of a read one long span (several of
    libnfs's 1 MiB reads): the same bytes as locally, for one long read and for reads from
    several threads (each borrowing its own connection)."""
    folder = nfs_server.export / "spans"
    folder.mkdir()
    folder.chmod(0o755)
    data = os.urandom(6 * 1024 * 1024 + 1000)
    built = build_ova(folder / "big.ova", "big", disks=[DiskSpec(8 * 1024 * 1024, [(4096, data)])])
    built.path.chmod(0o644)
    remote, local = _connect(f"127.0.0.1:{folder}"), OvaConnection(folder)
    try:
        [vm] = remote.inventory().vms
        key = vm.disks[0].key
        with remote.open_disk(vm.id, key) as r, local.open_disk(vm.id, key) as lr:
            whole = r.read(0, r.size)
            assert whole == lr.read(0, lr.size) and whole[4096 : 4096 + len(data)] == data
            with ThreadPoolExecutor(4) as pool:
                parts = list(pool.map(lambda i: r.read(i * 2_000_000, 3_000_000), range(4)))
            assert parts == [whole[i * 2_000_000 : i * 2_000_000 + 3_000_000] for i in range(4)]
    finally:
        remote.close()
        local.close()
