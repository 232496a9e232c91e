"""kubevirt.io/v1 VirtualMachine and PVC manifests for a planned VM, shared by all targets."""

from __future__ import annotations

from typing import Any

from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.targets.base import DiskClaim

MIB = 1024 * 1024


def round_up(n: int, unit: int = MIB) -> int:
    return -(-n // unit) * unit


def disk_claims(vm: VmPlan) -> list[DiskClaim]:
    return [DiskClaim(d.pvc_name, vm.namespace, d.capacity, pvc_manifest(vm, d)) for d in vm.disks]


def pvc_manifest(vm: VmPlan, disk: DiskPlan) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": [disk.access_mode],
        "volumeMode": disk.volume_mode,
        "resources": {"requests": {"storage": f"{round_up(disk.capacity) // MIB}Mi"}},
    }
    if disk.storage_class:
        spec["storageClassName"] = disk.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": disk.pvc_name,
            "namespace": vm.namespace,
            "labels": {**vm.labels, "vmDisk": disk.key},
            "annotations": {"forklift.konveyor.io/disk-source": disk.key},
        },
        "spec": spec,
    }


def vm_manifest(vm: VmPlan, running: bool | None = None) -> dict[str, Any]:
    """The VirtualMachine; ``runStrategy`` restores the source's power state by default."""
    on = vm.power_state == "On" if running is None else running
    firmware: dict[str, Any] = (
        {"bootloader": {"efi": {"secureBoot": False}}}
        if vm.firmware == "efi"
        else {"bootloader": {"bios": {}}}
    )
    sockets = max(1, vm.cpus // max(1, vm.cores_per_socket))
    disks, volumes = [], []
    for i, d in enumerate(vm.disks):
        vol = f"vol-{i}"
        disk: dict[str, Any] = {"name": vol, "disk": {"bus": d.bus}}
        if i == 0:
            disk["bootOrder"] = 1
        disks.append(disk)
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": d.pvc_name}})
    interfaces, networks = [], []
    for i, n in enumerate(n for n in vm.nics if n.dest_type != "ignored"):
        net = f"net-{i}"
        iface: dict[str, Any] = {"name": net, "model": n.model or "virtio"}
        if n.mac:
            iface["macAddress"] = n.mac
        if n.dest_type == "pod":
            iface["masquerade"] = {}
            networks.append({"name": net, "pod": {}})
        else:
            iface["bridge"] = {}
            networks.append({"name": net, "multus": {"networkName": n.nad}})
        interfaces.append(iface)
    labels = dict(vm.labels)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": vm.target_name,
            "namespace": vm.namespace,
            "labels": labels,
            "annotations": {
                "forklift.konveyor.io/source-vm-name": vm.source_name,
                "forklift.konveyor.io/source-vm-id": vm.vm_id,
            },
        },
        "spec": {
            "runStrategy": "Always" if on else "Halted",
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "domain": {
                        "cpu": {"sockets": sockets, "cores": vm.cores_per_socket, "threads": 1},
                        "memory": {"guest": f"{vm.memory_mb}Mi"},
                        "firmware": firmware,
                        "machine": {"type": "q35"},
                        "features": {"acpi": {}},
                        "devices": {"disks": disks, "interfaces": interfaces},
                    },
                    "networks": networks,
                    "volumes": volumes,
                },
            },
        },
    }
