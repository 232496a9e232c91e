"""A real VMware-like Debian guest, migrated cold from an OVA onto the local target, is
converted by virt-v2v and then boots on virtio; unconverted, the same disk does not.

Each test boots a real appliance or guest in software mode here (KVM aborts on these hosts),
so the whole path runs once per ``make test`` with the guest cached: see the README's "Guest
conversion" section for the timings.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support.guest import VM, Guest, boot, ensure_guest_ova, file_in_guest, guest_workspace

pytestmark = [pytest.mark.integration, pytest.mark.guest]


def test_cold_migration_converts_the_guest_and_it_boots_on_virtio(
    guest: Guest, tmp_path: Path
) -> None:
    ova = ensure_guest_ova(guest)
    ws = guest_workspace(tmp_path, ova)
    # the negative control boots the unconverted source disk (qemu -snapshot: never written)
    # on the second core while the migration runs: the same assertions, less waiting
    with ThreadPoolExecutor(1) as pool:
        negative = pool.submit(boot, guest.disk, tmp_path / "unconverted.console")
        started = time.monotonic()
        proc = ws.reconcile("--once", timeout=1800)
        migration_seconds = time.monotonic() - started
        unconverted = negative.result()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    vm_status = ws.status("plan", "demo-plan")["status"]["migration"]["vms"][0]
    assert vm_status["phase"] == "Completed", vm_status
    steps = {s["name"]: s for s in vm_status["pipeline"]}
    convert = steps["ConvertGuest"]
    assert convert["phase"] == "Completed", convert
    assert "Debian" in convert["guest"]["os"]
    assert convert["guest"]["virtio"] == {"disk": True, "network": True}
    assert convert["guest"]["appliance"] in ("kvm", "tcg")
    assert convert["annotations"]["appliance"]

    ns = ws.cluster / "demo-vms"
    manifest = YAML(typ="safe").load((ns / "virtualmachines" / f"{VM}.yaml").read_text())
    assert "Debian" in manifest["metadata"]["annotations"]["mtv-gitops.io/guest-os"]
    devices = manifest["spec"]["template"]["spec"]["domain"]["devices"]
    assert [d["disk"]["bus"] for d in devices["disks"]] == ["virtio"]
    assert [i["model"] for i in devices["interfaces"]] == ["virtio"]

    disk = ns / "disks" / f"{VM}-disk-0.img"
    assert not file_in_guest(disk, "/usr/bin/vmtoolsd")  # open-vm-tools removed
    assert file_in_guest(guest.disk, "/usr/bin/vmtoolsd")  # the source still has them

    converted = boot(disk, tmp_path / "converted.console")
    assert converted.reached, converted.tail
    assert not unconverted.reached, unconverted.tail
    assert "Gave up waiting for root" in unconverted.tail or "ALERT!" in unconverted.tail
    print(
        f"\nguest build {guest.build_seconds:.0f}s (cached: {guest.cached}); cold migration "
        f"{migration_seconds:.0f}s of which ConvertGuest {convert['guest']['seconds']:.0f}s "
        f"({convert['guest']['appliance']}); boot to multi-user {converted.seconds:.0f}s "
        f"({converted.accel}); unconverted gave up after {unconverted.seconds:.0f}s"
    )
