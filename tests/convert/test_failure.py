"""A guest virt-v2v cannot convert fails the VM at ConvertGuest, with virt-v2v's own message
and its last log lines in status; the source is untouched and the target disk is kept."""

from __future__ import annotations

import pytest

from plugins.ova.factory import DiskSpec, NicSpec, semi_random
from reconciler.transfer.digest import disk_digest_of_file
from tests.support.workspace import MIB

pytestmark = [pytest.mark.integration, pytest.mark.guest]


def test_a_disk_with_a_boot_sector_but_no_os_fails_at_convert_guest(workspace_factory) -> None:
    # an MBR signature and nothing else: it looks bootable, but there is no OS to inspect
    spec = dict(
        name="no-os",
        cpus=1,
        memory_mb=512,
        disks=[DiskSpec(64 * MIB, [(510, b"\x55\xaa"), (8 * MIB, semi_random(MIB, 7))])],
        nics=[NicSpec("VM Network", "00:50:56:01:17:02")],
    )
    ws = workspace_factory([spec])
    ova_bytes = next(ws.ova.iterdir()).read_bytes()
    proc = ws.reconcile("--once", timeout=1200)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]

    vm = ws.status("plan", "demo-plan")["status"]["migration"]["vms"][0]
    assert vm["phase"] == "Failed"
    assert vm["error"]["phase"] == "ConvertGuest"
    [reason] = vm["error"]["reasons"]
    assert reason.startswith("virt-v2v: inspection could not detect the source guest"), reason
    assert "target disks kept for inspection" in reason
    steps = {s["name"]: s for s in vm["pipeline"]}
    assert steps["ConvertGuest"]["phase"] == "Failed"
    assert steps["ConvertGuest"]["log"], "the conversion log's last lines are in status"
    assert steps["CreateVM"]["phase"] == "Pending"
    disk = ws.cluster / "demo-vms" / "disks" / "no-os-disk-0.img"
    assert disk_digest_of_file(disk) == ws.ovas["no-os"].disks[0].digest  # kept, unchanged
    assert next(ws.ova.iterdir()).read_bytes() == ova_bytes  # the source is untouched
    log = ws.cluster / "demo-vms" / "conversions" / "no-os" / "virt-v2v.log"
    assert "inspection could not detect" in log.read_text()
