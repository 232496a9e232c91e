"""The vCenter simulator for tests: built once (a test fails with the reason when it cannot be
built), VMs given real disks (a descriptor and its extents, PUT into the datastore over the same
/folder HTTPS endpoint vCenter serves), and a connection through the plugin.  The simulator and
the disk helpers the warm demo needs too live in ``plugins.vsphere.simulator``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from plugins.ova.factory import semi_random
from plugins.vsphere.plugin import VsphereConnection, mtv_gitops_connect
from plugins.vsphere.simulator import GOPATH, SOURCE, Simulator, SimulatorUnavailable
from plugins.vsphere.simulator import simulator_binary as _build
from plugins.vsphere.simulator import start_simulator as _start
from plugins.vsphere.simulator.disks import (
    add_disk,
    flat_descriptor,
    guest_write,
    put_file,
    split_path,
    wait,
    write_flat_disk,
)
from reconciler.sources import sha1_fingerprint

MiB = 1024 * 1024

__all__ = [
    "GOPATH",
    "SOURCE",
    "Simulator",
    "add_disk",
    "connect",
    "content",
    "datastore",
    "first_vm",
    "flat_descriptor",
    "guest_write",
    "put_file",
    "simulator_binary",
    "split_path",
    "start_simulator",
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


def simulator_binary():
    """The built simulator; a test fails (with the reason) when it cannot be built."""
    try:
        return _build()
    except SimulatorUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def start_simulator(**flags: int | str) -> Simulator:
    simulator_binary()  # fail the test with the reason when it cannot be built
    return _start(**flags)


def content(size: int, seed: int = 1) -> bytes:
    """Data with holes: 1 MiB of data, 1 MiB of zeros, repeated."""
    out = bytearray(size)
    for off in range(0, size, 2 * MiB):
        out[off : off + MiB] = semi_random(min(MiB, size - off), seed + off)
    return bytes(out)


def connect(sim: Simulator, hosts: dict | None = None, **settings) -> VsphereConnection:
    fp = sha1_fingerprint(sim.host, sim.port)
    return mtv_gitops_connect("vsphere", sim.url, sim.secret(thumbprint=fp), settings, hosts or {})


def first_vm(conn: VsphereConnection):
    from pyVmomi import vim

    content_ = conn.si.RetrieveContent()
    view = content_.viewManager.CreateContainerView(content_.rootFolder, [vim.VirtualMachine], 1)
    try:
        return sorted(view.view, key=lambda v: v._moId)[0]
    finally:
        view.Destroy()


def datastore(conn: VsphereConnection, name: str):
    from pyVmomi import vim

    c = conn.si.RetrieveContent()
    view = c.viewManager.CreateContainerView(c.rootFolder, [vim.Datastore], True)
    try:
        return next(d for d in view.view if d.name == name)
    finally:
        view.Destroy()
