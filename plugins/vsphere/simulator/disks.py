"""Give simulator VMs real disks, and write to them as a running guest would.

Disk files are PUT into the datastore over the same ``/folder`` HTTPS endpoint vCenter serves
(a vmfs descriptor and its flat extent); guest writes go to the simulator's ``/cbt/write``,
which records them for changed block tracking.
"""

from __future__ import annotations

import http.client
import ssl
import time
from typing import Any
from urllib.parse import quote

from plugins.vsphere.simulator import Simulator


def _connection(sim: Simulator, timeout: float) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return http.client.HTTPSConnection(sim.host, sim.port, context=ctx, timeout=timeout)


def put_file(sim: Simulator, datastore: str, path: str, data: bytes, dc: str = "DC0") -> None:
    """HTTP PUT of a whole file into a datastore, as `govc datastore.upload` does."""
    conn = _connection(sim, 60)
    try:
        url = f"/folder/{quote(path)}?dcPath={quote(dc)}&dsName={quote(datastore)}"
        conn.request("PUT", url, body=data, headers={"Content-Length": str(len(data))})
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 201):
            raise RuntimeError(f"PUT {path}: HTTP {resp.status}")
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


def flat_path(file_name: str) -> tuple[str, str]:
    """The datastore and path of a disk's flat extent (``vm/disk1-flat.vmdk``)."""
    ds, path = split_path(file_name)
    return ds, path.removesuffix(".vmdk") + "-flat.vmdk"


def write_flat_disk(sim: Simulator, file_name: str, data: bytes, dc: str = "DC0") -> None:
    """Replace a VM disk's files with a vmfs descriptor and a flat extent holding ``data``."""
    ds, path = split_path(file_name)
    _, flat = flat_path(file_name)
    put_file(sim, ds, flat, data, dc)
    put_file(sim, ds, path, flat_descriptor(len(data), flat.rpartition("/")[2]).encode(), dc)


def guest_write(sim: Simulator, disk_file: str, offset: int, data: bytes) -> None:
    """What a running guest does to its disk: the simulator records it for CBT."""
    ds, flat = flat_path(disk_file)
    conn = _connection(sim, 30)
    try:
        conn.request(
            "POST", f"/cbt/write?dsName={quote(ds)}&path={quote(flat)}&offset={offset}", body=data
        )
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"guest write to {disk_file} at {offset}: HTTP {resp.status}")
    finally:
        conn.close()


def wait(task: Any, timeout: float = 60) -> None:
    """Wait for a vSphere task; raises when it fails."""
    deadline = time.monotonic() + timeout
    while task.info.state not in ("success", "error"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task} still {task.info.state} after {timeout:.0f}s")
        time.sleep(0.05)
    if task.info.state != "success":
        raise RuntimeError(f"task {task} failed: {task.info.error}")


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


__all__ = [
    "add_disk",
    "flat_descriptor",
    "flat_path",
    "guest_write",
    "put_file",
    "split_path",
    "wait",
    "write_flat_disk",
]
