"""Disk reads through image transfers, against the real ovirt-imageio daemon: a daemon killed
mid-copy (the copy fails, the transfer is cancelled, the next one resumes from the
checkpoints), a transfer left open by a killed reconciler (finished before a new one), the
engine's proxy URL, a running VM's disks refused, a guest that ignores ACPI stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.sources import SourceError
from reconciler.transfer.engine import TransferError, copy_disk
from reconciler.transfer.rawfile import RawDiskWriter
from tests.support.ovirt_engine import World, logical, pattern, qcow2_with_holes

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


def _vm(world: World, folder: Path, name: str, **kw) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    full = qcow2_with_holes(
        folder / f"{name}.qcow2", 12 * MiB, [(i * MiB, pattern(MiB, i)) for i in range(0, 12, 2)]
    )
    return world.engine.add_vm(name, [(full, "qcow2", "data1", "virtio")], [], **kw)


class CrashAfter:
    """The plugin's reader, with ``crash`` called before read number ``n + 1`` (the daemon
    killed between two reads, at a point the test chooses, not at a time)."""

    def __init__(self, reader, n: int, crash) -> None:
        self.reader, self.n, self.crash = reader, n, crash
        self.size = reader.size
        self.reads = 0
        self.crashed = False

    def extents(self):
        return self.reader.extents()

    def read(self, offset: int, length: int) -> bytes:
        self.reads += 1
        if self.reads > self.n and not self.crashed:
            self.crashed = True
            self.crash()
        return self.reader.read(offset, length)

    def close(self) -> None:
        self.reader.close()


def _disk(world: World, vm_id: str) -> str:
    return world.engine.vms[vm_id].attachments[0].disk.id


def _phases(world: World, disk_id: str) -> list[str]:
    e = world.engine
    with e.lock:
        return [x.phase.value for x in e.transfers.values() if x.disk.id == disk_id]


def test_a_daemon_killed_mid_copy_cancels_the_transfer_and_the_next_copy_resumes(
    world: World, tmp_path: Path
) -> None:
    vm_id = _vm(world, tmp_path / "img", "resume")
    disk_id = _disk(world, vm_id)
    d = world.engine.disks[disk_id]
    expected = logical(d.image, d.fmt, tmp_path / "expected.raw")
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {"readRetrySeconds": "0"})
    store = ProgressStore(tmp_path / "progress.db")
    out = tmp_path / "out.img"
    try:
        reader = conn.open_disk(vm_id, disk_id)
        writer = RawDiskWriter(out, reader.size)
        crash = CrashAfter(reader, 3, world.peer.daemon.kill)  # a crash: tickets gone with it
        try:
            with pytest.raises((TransferError, SourceError)):
                copy_disk(crash, writer, store, "rhv/resume", chunk_size=MiB, streams=1)
        finally:
            reader.close()  # the failed read cancels the transfer: the disk is unlocked
            writer.close()
        assert crash.crashed
        assert _phases(world, disk_id) == ["finished_failure"]
        assert world.engine.disks[disk_id].disk.status.value == "ok"

        world.peer.daemon.start()  # the host's daemon is back (same port)
        reader = conn.open_disk(vm_id, disk_id)
        writer = RawDiskWriter(out, reader.size)
        try:
            result = copy_disk(reader, writer, store, "rhv/resume", chunk_size=MiB, streams=1)
        finally:
            reader.close()
            writer.close()
        assert result.resumed_chunks >= 3
        assert out.read_bytes() == expected
        assert _phases(world, disk_id) == ["finished_failure", "finished_success"]
    finally:
        store.close()
        conn.close()


LEFT_OPEN = """
import json, os, sys
from reconciler.plugin_manager import connect
args = json.loads(os.environ["OVIRT_TEST_ARGS"])
conn = connect("ovirt", args["url"], args["secret"], {})
reader = conn.open_disk(args["vm"], args["disk"])
reader.read(0, 4096)
print("READING", flush=True)
sys.stdin.read()  # held open until killed
"""


def test_a_transfer_left_open_by_a_killed_reconciler_is_finished_before_a_new_one(
    world: World, tmp_path: Path
) -> None:
    vm_id = _vm(world, tmp_path / "img", "orphan")
    disk_id = _disk(world, vm_id)
    args = {"url": world.engine.url, "secret": world.engine.secret(), "vm": vm_id, "disk": disk_id}
    proc = subprocess.Popen(
        [sys.executable, "-c", LEFT_OPEN],
        cwd=ROOT,
        env={**os.environ, "OVIRT_TEST_ARGS": json.dumps(args)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READING"
    finally:
        proc.kill()
        proc.wait()
    assert _phases(world, disk_id) == ["transferring"]
    assert world.engine.disks[disk_id].disk.status.value == "locked"

    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        reader = conn.open_disk(vm_id, disk_id)
        try:
            assert sum(e.length for e in reader.extents()) == reader.size
        finally:
            reader.close()
    finally:
        conn.close()
    assert _phases(world, disk_id) == ["finished_success", "finished_success"]
    assert world.engine.disks[disk_id].disk.status.value == "ok"


def test_reads_go_through_the_engines_proxy_when_the_provider_says_so(
    world: World, tmp_path: Path
) -> None:
    vm_id = _vm(world, tmp_path / "img", "proxied")
    disk_id = _disk(world, vm_id)
    for settings, host in (({}, "127.0.0.1"), ({"transferProxy": "true"}, "localhost")):
        conn = connect("ovirt", world.engine.url, world.engine.secret(), settings)
        try:
            reader = conn.open_disk(vm_id, disk_id)
            try:
                assert reader.read(0, 16) == pattern(16, 0)
                assert reader._url.startswith(f"https://{host}:")  # the test engine's proxy
            finally:
                reader.close()
        finally:
            conn.close()


def test_a_running_vms_disk_is_refused_by_the_engine_and_says_why(world: World) -> None:
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        conn.inventory()
        disk_id = _disk(world, world.web)  # web is up
        reader = conn.open_disk(world.web, disk_id)  # opening makes no transfer yet
        assert _phases(world, disk_id) == []
        with pytest.raises(SourceError, match="The VM is running"):
            list(reader.extents())
        reader.close()
        assert _phases(world, disk_id) == []
    finally:
        conn.close()


def test_a_guest_that_ignores_acpi_is_stopped_after_the_shutdown_timeout(
    world: World, tmp_path: Path
) -> None:
    vm_id = _vm(world, tmp_path / "img", "deaf", status="up", acpi=False)
    conn = connect(
        "ovirt", world.engine.url, world.engine.secret(), {"shutdownTimeoutSeconds": "0"}
    )
    try:
        conn.inventory()
        before = list(world.engine.requests)
        conn.power_off(vm_id, timeout=60)
        assert conn.power_state(vm_id) == "Off"
        asked = [p for m, p in world.engine.requests[len(before) :] if m == "POST"]
        assert asked == [
            f"/ovirt-engine/api/vms/{vm_id}/shutdown",
            f"/ovirt-engine/api/vms/{vm_id}/stop",
        ]
        conn.power_on(vm_id)
        assert conn.power_state(vm_id) == "On"
    finally:
        conn.close()
