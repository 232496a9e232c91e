"""Disk reads from the simulator's datastores over HTTPS Range requests, through the engine."""

from __future__ import annotations

import hashlib
import socket
import threading
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.sources import SourceError, sha1_fingerprint
from reconciler.transfer.engine import TransferError, copy_disk
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter
from reconciler.transfer.throttle import ThrottledReader
from tests.support.vsphere import (
    Simulator,
    add_disk,
    connect,
    content,
    datastore,
    first_vm,
    put_file,
    split_path,
    start_simulator,
    write_flat_disk,
    write_vmdk_files,
)

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sim():
    s = start_simulator(hosts=1, vms=1, datastores=2)
    yield s
    s.stop()


def fresh_disk(sim: Simulator, size: int, ds: str = "LocalDS_1"):
    conn = connect(sim)
    vm = first_vm(conn)
    disk = add_disk(conn.si, vm, size, datastore(conn, ds))
    conn.close()
    return vm._moId, disk


def test_a_flat_disk_put_into_the_datastore_arrives_byte_identical(sim, tmp_path) -> None:
    data = content(6 * MiB + 4096)
    vm_id, disk = fresh_disk(sim, len(data))
    write_flat_disk(sim, disk.backing.fileName, data)
    conn = connect(sim)
    try:
        reader = conn.open_disk(vm_id, str(disk.key))
        assert reader.size == len(data)
        assert reader.read(MiB - 10, 20) == data[MiB - 10 : MiB + 10]
        store = ProgressStore(tmp_path / "p.db")
        writer = RawDiskWriter(tmp_path / "disk.img", reader.size)
        result = copy_disk(reader, writer, store, "d1", chunk_size=MiB, streams=3)
        writer.close()
        reader.close()
    finally:
        conn.close()
    assert (tmp_path / "disk.img").read_bytes() == data
    assert result.source_digest.startswith("xxh3t-1m-64k:")


@pytest.mark.parametrize(
    "subformat", ["monolithicSparse", "twoGbMaxExtentSparse", "monolithicFlat"]
)
def test_other_layouts_read_through_their_extents(sim, tmp_path, subformat) -> None:
    data = content(5 * MiB)
    raw = tmp_path / "src.raw"
    raw.write_bytes(data)
    vm_id, disk = fresh_disk(sim, len(data))
    write_vmdk_files(sim, disk.backing.fileName, raw, subformat, tmp_path)
    conn = connect(sim)
    try:
        reader = conn.open_disk(vm_id, str(disk.key))
        got = reader.read(0, reader.size)
        extents = list(reader.extents())
        reader.close()
    finally:
        conn.close()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    if "Sparse" in subformat:  # unallocated grains are holes the copy skips
        assert sum(e.length for e in extents if e.zero) >= 2 * MiB


def test_unreadable_layouts_say_what_to_do(sim) -> None:
    vm_id, disk = fresh_disk(sim, MiB)
    ds, path = split_path(disk.backing.fileName)
    conn = connect(sim)
    try:
        with pytest.raises(SourceError, match="is empty: not a VMDK descriptor"):
            conn.open_disk(vm_id, str(disk.key))  # the simulator's own (empty) files
        delta = (
            'createType="vmfsSparse"\nparentFileNameHint="base.vmdk"\n'
            'RW 2048 VMFSSPARSE "x-delta.vmdk"\n'
        )
        put_file(sim, ds, path, delta.encode())
        with pytest.raises(SourceError, match="snapshot delta: delete or consolidate"):
            conn.open_disk(vm_id, str(disk.key))
        with pytest.raises(SourceError, match="has no disk nope"):
            conn.open_disk(vm_id, "nope")
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simulator_killed_mid_copy_then_restarted_the_copy_resumes(tmp_path) -> None:
    """The datastore goes away mid-copy: reads are retried, then the copy fails with what was
    durable recorded; against the restarted vCenter the copy resumes from its checkpoints."""
    port = free_port()
    flags = dict(hosts=1, vms=1, datastores=2, listen=f"127.0.0.1:{port}")
    data = content(24 * MiB, seed=7)

    def prepare() -> tuple[Simulator, str, str]:
        s = start_simulator(**flags)
        vm_id, disk = fresh_disk(s, len(data))
        write_flat_disk(s, disk.backing.fileName, data)
        return s, vm_id, str(disk.key)

    sim1, vm_id, key = prepare()
    store = ProgressStore(tmp_path / "p.db")
    conn = connect(sim1, readRetrySeconds=1)
    reader = conn.open_disk(vm_id, key)
    writer = RawDiskWriter(tmp_path / "disk.img", reader.size)
    killed = threading.Event()

    def on_progress(p) -> None:
        if p.bytes_done >= 8 * MiB and not killed.is_set():
            killed.set()
            sim1.proc.kill()
            sim1.proc.wait()

    with pytest.raises(TransferError, match="failed .* times"):
        copy_disk(
            ThrottledReader(reader, 8 * MiB),
            writer,
            store,
            "disk",
            chunk_size=MiB,
            streams=1,
            on_progress=on_progress,
        )
    writer.close()
    reader.close()
    assert killed.is_set()
    done_before = len(store.done_chunks("disk"))
    assert 0 < done_before < 24

    sim2, vm_id2, key2 = prepare()
    try:
        assert (vm_id2, key2) == (vm_id, key)  # the same VM and disk after the restart
        conn = connect(sim2)
        reader = conn.open_disk(vm_id, key)
        writer = RawDiskWriter(tmp_path / "disk.img", reader.size)
        verify = RawDiskReader(tmp_path / "disk.img")
        result = copy_disk(
            reader, writer, store, "disk", chunk_size=MiB, streams=2, verify_reader=verify
        )
        verify.close()
        writer.close()
        read_after = reader.client.bytes_read
        reader.close()
        conn.close()
    finally:
        sim2.stop()
    assert result.resumed_chunks == done_before
    assert read_after < len(data)  # the chunks copied before the kill were not read again
    assert Path(tmp_path / "disk.img").read_bytes() == data
    assert result.source_digest == result.target_digest


def test_a_host_manifest_sends_disk_reads_to_the_esxi_migration_network(sim) -> None:
    """With a Host manifest for the VM's ESXi host, the disk is read from that host (its
    address, its own credentials and certificate pin, ``dcPath=ha-datacenter``), not vCenter."""
    data = content(3 * MiB, seed=3)
    vm_id, disk = fresh_disk(sim, len(data), ds="LocalDS_0")
    write_flat_disk(sim, disk.backing.fileName, bytes(len(data)))  # vCenter's copy: zeros
    esx = start_simulator(esx="true", username="root", password="esx-Secret-1")
    try:
        ds, path = split_path(disk.backing.fileName)
        write_flat_disk(esx, disk.backing.fileName, data, dc="ha-datacenter")
        probe = connect(sim)
        host_id = first_vm(probe).runtime.host._moId
        probe.close()
        fp = sha1_fingerprint(esx.host, esx.port)
        hosts = {
            host_id: {
                "ipAddress": f"{esx.host}:{esx.port}",
                "secret": esx.secret(thumbprint=fp),
            }
        }
        conn = connect(sim, hosts=hosts)
        try:
            reader = conn.open_disk(vm_id, str(disk.key))
            assert reader.client.where == f"{esx.host}:{esx.port}"
            assert reader.descriptor.datacenter == "ha-datacenter"
            assert reader.read(0, reader.size) == data
            reader.close()
        finally:
            conn.close()
        wrong = {host_id: {**hosts[host_id], "secret": esx.secret(thumbprint="AB:" * 19 + "AB")}}
        conn = connect(sim, hosts=wrong)
        try:
            with pytest.raises(SourceError, match="not the thumbprint"):
                conn.open_disk(vm_id, str(disk.key))
        finally:
            conn.close()
    finally:
        esx.stop()


def test_the_transfer_command_reads_over_the_hosts_migration_network(sim, tmp_path) -> None:
    """What a transfer Job runs: `mtv-gitops transfer` with --host/--host-secret reads the
    VM's disk from its ESXi host, credentials from the environment only."""
    import os
    import subprocess
    import sys

    from reconciler.secrets.resolver import env_name

    data = content(2 * MiB, seed=9)
    vm_id, disk = fresh_disk(sim, len(data), ds="LocalDS_0")
    write_flat_disk(sim, disk.backing.fileName, bytes(len(data)))
    esx = start_simulator(esx="true", username="root", password="esx-Secret-2")
    try:
        write_flat_disk(esx, disk.backing.fileName, data, dc="ha-datacenter")
        probe = connect(sim)
        host_id = first_vm(probe).runtime.host._moId
        probe.close()
        env = dict(os.environ)
        for (ns, name), values in {
            ("openshift-mtv", "vc"): sim.secret(thumbprint=sha1_fingerprint(sim.host, sim.port)),
            ("openshift-mtv", "esx"): esx.secret(thumbprint=sha1_fingerprint(esx.host, esx.port)),
        }.items():
            env |= {env_name(ns, name, k): v for k, v in values.items()}
        out = tmp_path / "disk.img"
        argv = [
            *(sys.executable, "-m", "reconciler.cli", "transfer"),
            *("--provider", "openshift-mtv/vcenter", "--type", "vsphere", "--url", sim.url),
            *("--secret", "openshift-mtv/vc"),
            *("--host", f"{host_id}={esx.host}:{esx.port}"),
            *("--host-secret", f"{host_id}=openshift-mtv/esx"),
            *("--vm", vm_id, "--disk", str(disk.key), "--output", str(out)),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == data  # the host's copy, not vCenter's zeros
        assert "esx-Secret-2" not in proc.stdout + proc.stderr
    finally:
        esx.stop()
