"""Benchmark: ConvertGuest on the tests' real guest, with and without KVM.

Run ``python bench/bench_convert.py [DISK]`` after ``make demo-convert`` (or ``make test``) has
built the VMware-like Debian guest of the tests, cached as
``~/.cache/mtv-gitops/guest-<hash>/disk.raw`` (the newest is taken when DISK is not given).
It converts a copy of that disk with ``virt-v2v-in-place`` in software mode (TCG), and with
KVM when the probe says KVM really works here (else it prints why it did not run).  The whole
cold migration and its copy/conversion shares are printed by ``make demo-convert``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.convert import kvm  # noqa: E402
from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec  # noqa: E402
from reconciler.convert.v2v import convert_in_place  # noqa: E402


def cached_guest() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"
    disks = sorted(cache.glob("guest-*/disk.raw"), key=lambda p: p.stat().st_mtime)
    if not disks:
        sys.exit("no cached guest: run make demo-convert (or make test) first")
    return disks[-1]


def convert_once(disk: Path, work: Path, force_tcg: bool) -> float:
    copy = work / "disk.raw"
    shutil.copyfile(disk, copy)
    spec = GuestSpec(
        name="bench",
        disks=(GuestDisk(copy, "scsi"),),
        nics=(GuestNic("00:50:56:01:17:01", "vmxnet3", "VM Network"),),
    )
    if force_tcg:
        os.environ["MTV_GITOPS_FORCE_TCG"] = "1"
    kvm.probe.cache_clear()
    try:
        return convert_in_place(spec, work / "log").seconds
    finally:
        copy.unlink(missing_ok=True)
        os.environ.pop("MTV_GITOPS_FORCE_TCG", None)
        kvm.probe.cache_clear()


def main() -> None:
    disk = Path(sys.argv[1]) if len(sys.argv) > 1 else cached_guest()
    print(f"guest: {disk}")
    probe = kvm.probe()
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        tcg = convert_once(disk, Path(tmp), force_tcg=True)
        print(f"ConvertGuest, software mode (TCG): {tcg:.1f}s")
        if probe.software:
            print(f"ConvertGuest with KVM: not run ({probe.reason})")
        else:
            with_kvm = convert_once(disk, Path(tmp), force_tcg=False)
            print(f"ConvertGuest with KVM: {with_kvm:.1f}s (TCG/KVM {tcg / with_kvm:.1f}x)")


if __name__ == "__main__":
    main()
