"""kubevirt.io/v1 VirtualMachine and PVC manifests for a planned VM, shared by all targets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.targets.base import DiskClaim

MIB = 1024 * 1024
# VirtualMachine annotations that carry what guest conversion (virt-v2v) found
GUEST_OS = "mtv-gitops.io/guest-os"
GUEST_OSINFO = "mtv-gitops.io/guest-osinfo"
CONVERTED = "mtv-gitops.io/converted"


# The MTV 2.4 docs' table 2.1 "default volume and access modes" per provisioner, used when the
# StorageMap entry names neither (CDI's storage profiles say the same).
PROVISIONER_DEFAULTS: dict[str, tuple[str, str]] = {
    "kubernetes.io/aws-ebs": ("Block", "ReadWriteOnce"),
    "kubernetes.io/azure-disk": ("Block", "ReadWriteOnce"),
    "kubernetes.io/azure-file": ("Filesystem", "ReadWriteMany"),
    "kubernetes.io/cinder": ("Block", "ReadWriteOnce"),
    "kubernetes.io/gce-pd": ("Block", "ReadWriteOnce"),
    "kubernetes.io/hostpath-provisioner": ("Filesystem", "ReadWriteOnce"),
    "manila.csi.openstack.org": ("Filesystem", "ReadWriteMany"),
    "openshift-storage.cephfs.csi.ceph.com": ("Filesystem", "ReadWriteMany"),
    "openshift-storage.rbd.csi.ceph.com": ("Block", "ReadWriteOnce"),
    "kubernetes.io/rbd": ("Block", "ReadWriteOnce"),
    "kubernetes.io/vsphere-volume": ("Block", "ReadWriteOnce"),
}
# Storage that is not in the table (or not dynamically provisioned): the docs' advice.
FALLBACK_MODES = ("Filesystem", "ReadWriteOnce")
# CDI's default global filesystem overhead: the share of a Filesystem PVC that the filesystem
# itself takes. The MTV docs advise 10% or more for EXT4 on block storage.
DEFAULT_FILESYSTEM_OVERHEAD = 0.055


@dataclass(frozen=True)
class StorageSettings:
    """What the target knows of its storage: provisioner per storage class (from the
    cluster's StorageClasses) and the filesystem overhead, global or per class, as CDI has."""

    provisioners: Mapping[str, str] = field(default_factory=dict)
    default_class: str = ""  # the cluster's default StorageClass, for PVCs that name none
    filesystem_overhead: float = DEFAULT_FILESYSTEM_OVERHEAD
    overhead_by_class: Mapping[str, float] = field(default_factory=dict)

    def modes(self, disk: DiskPlan) -> tuple[str, str]:
        """(volumeMode, accessMode): the StorageMap's, else the provisioner's default."""
        provisioner = self.provisioners.get(disk.storage_class or self.default_class, "")
        volume, access = PROVISIONER_DEFAULTS.get(provisioner, FALLBACK_MODES)
        return disk.volume_mode or volume, disk.access_mode or access

    def overhead(self, storage_class: str) -> float:
        return self.overhead_by_class.get(
            storage_class or self.default_class, self.filesystem_overhead
        )

    def request_bytes(self, disk: DiskPlan) -> int:
        """The PVC request: the disk, plus the filesystem's share on a Filesystem volume (the
        image must fit beside the filesystem's own metadata), in whole MiB."""
        volume, _ = self.modes(disk)
        size = disk.capacity
        if volume == "Filesystem":
            size = math.ceil(size / (1 - self.overhead(disk.storage_class)))
        return round_up(size)


def round_up(n: int, unit: int = MIB) -> int:
    return -(-n // unit) * unit


def disk_claims(vm: VmPlan, storage: StorageSettings | None = None) -> list[DiskClaim]:
    return [
        DiskClaim(d.pvc_name, vm.namespace, d.capacity, pvc_manifest(vm, d, storage))
        for d in vm.disks
    ]


def pvc_manifest(
    vm: VmPlan, disk: DiskPlan, storage: StorageSettings | None = None
) -> dict[str, Any]:
    storage = storage or StorageSettings()
    volume, access = storage.modes(disk)
    spec: dict[str, Any] = {
        "accessModes": [access],
        "volumeMode": volume,
        "resources": {"requests": {"storage": f"{storage.request_bytes(disk) // MIB}Mi"}},
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


def vm_manifest(
    vm: VmPlan, running: bool | None = None, guest: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The VirtualMachine; ``runStrategy`` restores the source's power state by default.
    ``guest`` is what conversion (virt-v2v) found: the guest OS goes into the annotations,
    and disks and NICs go on virtio where it installed the drivers."""
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
        bus = "virtio" if guest and guest.get("virtio", {}).get("disk") else d.bus
        disk: dict[str, Any] = {"name": vol, "disk": {"bus": bus}}
        if i == 0:
            disk["bootOrder"] = 1
        disks.append(disk)
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": d.pvc_name}})
    interfaces, networks = [], []
    for i, n in enumerate(n for n in vm.nics if n.dest_type != "ignored"):
        net = f"net-{i}"
        model = "virtio" if guest and guest.get("virtio", {}).get("network") else n.model
        iface: dict[str, Any] = {"name": net, "model": model or "virtio"}
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
    annotations = {
        "forklift.konveyor.io/source-vm-name": vm.source_name,
        "forklift.konveyor.io/source-vm-id": vm.vm_id,
    }
    if guest:
        annotations[GUEST_OS] = str(guest.get("os", ""))
        if guest.get("osinfo"):
            annotations[GUEST_OSINFO] = str(guest["osinfo"])
        annotations[CONVERTED] = f"virt-v2v ({guest.get('appliance', '')} appliance)"
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": vm.target_name,
            "namespace": vm.namespace,
            "labels": labels,
            "annotations": annotations,
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
