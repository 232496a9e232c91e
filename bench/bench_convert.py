"""Benchmark: ConvertGuest on the tests' real guest, with and without KVM, and its share of a
whole cold migration.

Run ``python bench/bench_convert.py``.  It takes the cached VMware-like Debian guest of the
tests (``tests/support/guest.py``; built first when missing, several minutes), and:

1. converts a copy of its disk with ``virt-v2v-in-place`` in software mode (TCG), and with KVM
   when the probe says KVM really works here (else it prints why it did not run);
2. migrates it cold from its OVA onto the local target with ``mtv-gitops reconcile --once``
   and prints the copy's and the conversion's seconds and shares of the whole.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.convert import kvm  # noqa: E402
from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec  # noqa: E402
from reconciler.convert.v2v import convert_in_place  # noqa: E402
from tests.support.guest import copy_sparse, ensure_guest, ensure_guest_ova  # noqa: E402


def convert_once(disk: Path, work: Path, force_tcg: bool) -> float:
    copy = work / "disk.raw"
    with copy.open("wb") as f:
        f.truncate(disk.stat().st_size)
        copy_sparse(disk, f)
    spec = GuestSpec(
        name="bench",
        disks=(GuestDisk(copy, "scsi"),),
        nics=(GuestNic("00:50:56:01:17:01", "vmxnet3", "VM Network"),),
    )
    if force_tcg:
        os.environ["MTV_GITOPS_FORCE_TCG"] = "1"
    else:
        os.environ.pop("MTV_GITOPS_FORCE_TCG", None)
    kvm.probe.cache_clear()
    try:
        return convert_in_place(spec, work / "log").seconds
    finally:
        copy.unlink(missing_ok=True)
        os.environ.pop("MTV_GITOPS_FORCE_TCG", None)
        kvm.probe.cache_clear()


def main() -> None:
    started = time.monotonic()
    guest = ensure_guest()
    how = "cached" if guest.cached else f"built now in {time.monotonic() - started:.0f}s"
    print(f"guest: {guest.disk} ({how}; first build took {guest.build_seconds:.0f}s)")
    probe = kvm.probe()
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        tcg = convert_once(guest.disk, work, force_tcg=True)
        print(f"ConvertGuest, software mode (TCG): {tcg:.1f}s")
        if probe.software:
            print(f"ConvertGuest with KVM: not run ({probe.reason})")
        else:
            with_kvm = convert_once(guest.disk, work, force_tcg=False)
            print(f"ConvertGuest with KVM: {with_kvm:.1f}s (TCG/KVM {tcg / with_kvm:.1f}x)")
        ova = ensure_guest_ova(guest)
        from tests.convert.test_guest_boot import ova_workspace

        ws = ova_workspace(work / "ws", ova)
        t0 = time.monotonic()
        proc = ws.reconcile("--once", timeout=3600)
        whole = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            sys.exit(1)
        vm = ws.status("plan", "demo-plan")["status"]["migration"]["vms"][0]
        steps = {s["name"]: s for s in vm["pipeline"]}
        copy_s = _seconds(steps["CopyDisks"])
        conv_s = float(steps["ConvertGuest"]["guest"]["seconds"])
        print(
            f"cold migration from the OVA: {whole:.0f}s; CopyDisks {copy_s:.0f}s "
            f"({100 * copy_s / whole:.0f}%), ConvertGuest {conv_s:.0f}s "
            f"({100 * conv_s / whole:.0f}%, {steps['ConvertGuest']['guest']['appliance']})"
        )
        shutil.rmtree(work / "ws", ignore_errors=True)


def _seconds(step: dict) -> float:
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%SZ"
    return (
        datetime.strptime(step["completed"], fmt) - datetime.strptime(step["started"], fmt)
    ).total_seconds()


if __name__ == "__main__":
    main()
