"""Real OVAs built once per session with the plugin's own factory (qemu-img does the VMDKs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, NicSpec, OvaInfo, build_ova, semi_random

MiB = 1024 * 1024

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-nbd") is None,
    reason="qemu-img / qemu-nbd not installed",
)

# Written ranges, deliberately unaligned to the 64 KiB VMDK grain in places.
DISK1_WRITES = [
    (0, semi_random(MiB, 1)),
    (5 * MiB + 123, semi_random(70_000, 2)),
    (16 * MiB - 4096, semi_random(4096, 3)),
]
DISK2_WRITES = [(3 * MiB, semi_random(2 * MiB, 4))]
NICS = [
    NicSpec("VM Network", "00:50:56:aa:bb:01"),
    NicSpec("Storage Net", "00:50:56:aa:bb:02", model="E1000"),
]


def build_sample(folder: Path, name: str = "web01", **kwargs: object) -> OvaInfo:
    """The standard two-disk, two-NIC test VM."""
    args: dict = dict(
        cpus=4,
        cores_per_socket=2,
        memory_mb=3072,
        firmware="efi",
        os_type="rhel9_64Guest",
        disks=[
            DiskSpec(16 * MiB, writes=DISK1_WRITES),
            DiskSpec(8 * MiB, writes=DISK2_WRITES, bus="sata"),
        ],
        nics=NICS,
        keep_raw_dir=folder / "raw",
    )
    args.update(kwargs)
    (folder / "ovas").mkdir(parents=True, exist_ok=True)
    return build_ova(folder / "ovas" / f"{name}.ova", name, **args)


@pytest.fixture(scope="session")
def sample_ova(tmp_path_factory: pytest.TempPathFactory) -> OvaInfo:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    return build_sample(tmp_path_factory.mktemp("sample"))
