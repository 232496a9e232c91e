"""Test helpers: give simulator VMs real disks (a descriptor and its extents, PUT into the
datastore over the same /folder HTTPS endpoint vCenter serves)."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.plugins.vsphere.conftest import Simulator


def put_file(sim: Simulator, datastore: str, path: str, data: bytes, dc: str = "DC0") -> None:
    """HTTP PUT of a whole file into a datastore, as `govc datastore.upload` does."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection(sim.host, sim.port, context=ctx, timeout=60)
    try:
        url = f"/folder/{quote(path)}?dcPath={quote(dc)}&dsName={quote(datastore)}"
        conn.request("PUT", url, body=data, headers={"Content-Length": str(len(data))})
        resp = conn.getresponse()
        resp.read()
        assert resp.status in (200, 201), f"PUT {path}: HTTP {resp.status}"
    finally:
        conn.close()


def flat_descriptor(size: int, extent: str, create_type: str = "vmfs", kind: str = "VMFS") -> str:
    return (
        '# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=fffffffe\n'
        f'parentCID=ffffffff\ncreateType="{create_type}"\n\n# Extent description\n'
        f'RW {size // 512} {kind} "{extent}"\n\n# The Disk Data Base\n#DDB\n\n'
        'ddb.adapterType = "lsilogic"\nddb.virtualHWVersion = "13"\n'
    )


def split_path(file_name: str) -> tuple[str, str]:
    """``[LocalDS_0] vm/disk1.vmdk`` -> (``LocalDS_0``, ``vm/disk1.vmdk``)."""
    ds, _, path = file_name[1:].partition("]")
    return ds, path.strip()


def write_flat_disk(sim: Simulator, file_name: str, data: bytes, dc: str = "DC0") -> None:
    """Replace a VM disk's files with a vmfs descriptor and a flat extent holding ``data``."""
    ds, path = split_path(file_name)
    flat = path.removesuffix(".vmdk") + "-flat.vmdk"
    put_file(sim, ds, flat, data, dc)
    put_file(sim, ds, path, flat_descriptor(len(data), flat.rpartition("/")[2]).encode(), dc)


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


def add_disk(si: Any, vm: Any, capacity: int, datastore: Any) -> Any:
    """Reconfigure a VM with one more disk of ``capacity`` bytes on ``datastore``; returns it."""
    from pyVmomi import vim

    devices = vm.config.hardware.device
    controller = next(d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController))
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    unit = next(u for u in range(16) if u != 7 and u not in used)
    disk = vim.vm.device.VirtualDisk(
        controllerKey=controller.key,
        unitNumber=unit,
        capacityInKB=capacity // 1024,
        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
            fileName=f"[{datastore.name}]", datastore=datastore, diskMode="persistent"
        ),
    )
    spec = vim.vm.ConfigSpec(
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        ]
    )
    wait(vm.ReconfigVM_Task(spec))
    new = [
        d
        for d in vm.config.hardware.device
        if isinstance(d, vim.vm.device.VirtualDisk) and d.key not in {x.key for x in devices}
    ]
    return new[0]


def wait(task: Any) -> None:
    import time

    while task.info.state not in ("success", "error"):
        time.sleep(0.05)
    assert task.info.state == "success", task.info.error
