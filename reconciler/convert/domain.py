"""The libvirt domain XML virt-v2v reads (``-i libvirtxml``), written from the inventory.

virt-v2v learns the guest's firmware, its disks in boot order with their buses, and its NICs
from it; the disks point at the images the copy produced.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

# a source bus as libvirt names it, and the device name prefix a guest sees on it
_BUSES = {"scsi": ("scsi", "sd"), "sata": ("sata", "sd"), "ide": ("ide", "hd")}
_BUSES["virtio"] = ("virtio", "vd")
# a source NIC model as libvirt's <model type=...> names it
_NIC_MODELS = {"vmxnet3": "vmxnet3", "e1000": "e1000", "e1000e": "e1000e", "virtio": "virtio"}


@dataclass(frozen=True)
class GuestDisk:
    """One disk as the guest had it: the image to convert and the bus it hung on."""

    path: Path
    bus: str = "scsi"
    format: str = "raw"


@dataclass(frozen=True)
class GuestNic:
    mac: str
    model: str = ""
    network: str = "default"


@dataclass(frozen=True)
class GuestSpec:
    """What virt-v2v needs to know of a guest; disks in the source's order (boot disk first)."""

    name: str
    firmware: str = "bios"  # bios | efi
    memory_mb: int = 1024
    cpus: int = 1
    disks: tuple[GuestDisk, ...] = ()
    nics: tuple[GuestNic, ...] = field(default_factory=tuple)
    # libvirt's domain type of the source; virt-v2v's Linux conversion removes every other
    # hypervisor's tools whatever it says, so a source that does not say is fine
    hypervisor: str = "unknown"


def domain_xml(spec: GuestSpec) -> str:
    """The domain XML of ``spec``, as virt-v2v's "Minimal XML for -i libvirtxml" has it."""
    dom = ET.Element("domain", type=spec.hypervisor)
    ET.SubElement(dom, "name").text = spec.name
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mb)
    ET.SubElement(dom, "vcpu").text = str(max(1, spec.cpus))
    os_el = ET.SubElement(dom, "os")
    if spec.firmware == "efi":
        os_el.set("firmware", "efi")
    ET.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    devices = ET.SubElement(dom, "devices")
    used: dict[str, int] = {}
    for disk in spec.disks:
        bus, prefix = _BUSES.get(disk.bus.lower(), _BUSES["scsi"])
        index = used.get(prefix, 0)
        used[prefix] = index + 1
        el = ET.SubElement(devices, "disk", type="file", device="disk")
        ET.SubElement(el, "driver", name="qemu", type=disk.format)
        ET.SubElement(el, "source", file=str(disk.path))
        ET.SubElement(el, "target", dev=prefix + _letters(index), bus=bus)
    for nic in spec.nics:
        el = ET.SubElement(devices, "interface", type="network")
        ET.SubElement(el, "mac", address=nic.mac)
        ET.SubElement(el, "source", network=nic.network or "default")
        model = _NIC_MODELS.get(nic.model.lower().replace("virtual", ""))
        if model:
            ET.SubElement(el, "model", type=model)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa: the suffix of a disk's device name."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("a") + rem) + out
    return out
