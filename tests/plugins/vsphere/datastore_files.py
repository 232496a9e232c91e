"""Test helpers: give simulator VMs real disks (a descriptor and its extents, PUT into the
datastore over the same /folder HTTPS endpoint vCenter serves).  The helpers the warm demo
needs too live in ``plugins.vsphere.simulator.disks``; re-exported here."""

from __future__ import annotations

import subprocess
from pathlib import Path

from plugins.vsphere.simulator import Simulator
from plugins.vsphere.simulator.disks import (
    add_disk,
    flat_descriptor,
    guest_write,
    put_file,
    split_path,
    wait,
    write_flat_disk,
)

__all__ = [
    "add_disk",
    "flat_descriptor",
    "guest_write",
    "put_file",
    "split_path",
    "wait",
    "write_flat_disk",
    "write_vmdk_files",
]


def write_vmdk_files(sim: Simulator, file_name: str, raw: Path, subformat: str, tmp: Path) -> None:
    """Convert a raw image with qemu-img to a VMDK ``subformat`` and PUT every file it made
    (descriptor first renamed to the disk's name)."""
    ds, path = split_path(file_name)
    folder, _, name = path.rpartition("/")
    out = tmp / subformat
    out.mkdir(exist_ok=True)
    target = out / name
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            f"subformat={subformat}",
            str(raw),
            str(target),
        ],
        check=True,
    )
    for f in sorted(out.iterdir()):
        put_file(sim, ds, f"{folder}/{f.name}", f.read_bytes())
