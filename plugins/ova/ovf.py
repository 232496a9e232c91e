"""Parse an OVF descriptor into plain records the OVA plugin turns into inventory.

Elements and attributes are matched by local name, so OVF 1.x and 2.x envelopes and the
dialects of VMware, VirtualBox and oVirt exports all read the same way.  Documents with a
DOCTYPE are refused outright: an OVF never needs one, and refusing it rules out entity
expansion attacks whatever the XML parser would do with them.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from reconciler.sources import SourceError

VMW_NS = "http://www.vmware.com/schema/ovf"

# Namespaces that betray the exporting product, as Forklift's OVA provider guesses it.
_SOURCE_NAMESPACES = {
    "http://schemas.citrix.com/ovf/envelope/1": "Xen",
    "http://www.citrix.com/xenclient/ovf/1": "Xen",
    "http://www.virtualbox.org/ovf/machine": "VirtualBox",
    "http://www.ovirt.org/ovf": "oVirt",
}

# CIM ResourceType values (DSP1041).
RT_CPU = "3"
RT_MEMORY = "4"
RT_IDE = "5"
RT_SCSI = "6"
RT_ETHERNET = "10"
RT_CDROM = "15"
RT_DISK = "17"
RT_OTHER_STORAGE = "20"

_UNIT_WORDS = {
    "byte": 1,
    "bytes": 1,
    "kilobytes": 1024,
    "kb": 1024,
    "kib": 1024,
    "megabytes": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "gigabytes": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "terabytes": 1024**4,
    "tb": 1024**4,
}
_UNIT_RE = re.compile(r"^\s*byte\s*(?:\*\s*(\d+)\s*(?:\^\s*(\d+))?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class OvfFile:
    """A ``References/File``: a member of the OVA (or a file beside the OVF)."""

    id: str
    href: str
    size: int | None  # ovf:size in bytes, when the OVF says
    compression: str = ""  # ovf:compression, e.g. gzip (not readable in place)
    chunk_size: int | None = None  # ovf:chunkSize: the file is split into href.000000...


@dataclass(frozen=True)
class OvfDisk:
    """A ``DiskSection/Disk`` joined with its file and the hardware item that attaches it."""

    disk_id: str
    capacity: int  # bytes
    capacity_units: str
    file_ref: str
    file: OvfFile | None
    format: str
    populated_size: int | None
    bus: str = ""  # scsi | ide | sata | nvme | "" when no controller says
    element_name: str = ""


@dataclass(frozen=True)
class OvfNic:
    name: str
    network: str  # the OVF network name (rasd:Connection)
    mac: str
    model: str  # rasd:ResourceSubType, e.g. VmxNet3, E1000


@dataclass(frozen=True)
class OvfNetwork:
    name: str
    description: str = ""


@dataclass(frozen=True)
class OvfVirtualSystem:
    """One VirtualSystem: what a VM record needs."""

    id: str
    name: str
    cpus: int
    cores_per_socket: int
    memory_mb: int
    firmware: str  # bios | efi
    os_id: str  # CIM OsType number from OperatingSystemSection ovf:id
    os_type: str  # vmw:osType, e.g. centos7_64Guest
    os_description: str
    disks: tuple[OvfDisk, ...]
    nics: tuple[OvfNic, ...]
    devices: tuple[str, ...] = ()  # kinds of other hardware items (CD/DVD drive, ...)
    config: dict[str, str] = field(default_factory=dict)  # vmw:Config / vmw:ExtraConfig


@dataclass(frozen=True)
class OvfEnvelope:
    files: tuple[OvfFile, ...]
    networks: tuple[OvfNetwork, ...]
    systems: tuple[OvfVirtualSystem, ...]
    source: str  # VMware | VirtualBox | Xen | oVirt | Unknown (Forklift's ovaSource)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(el: ET.Element, name: str, default: str = "") -> str:
    """An attribute by local name, whatever namespace prefix the exporter used."""
    for key, value in el.attrib.items():
        if _local(key) == name:
            return value
    return default


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element, name: str, default: str = "") -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None else default


def parse_allocation_units(units: str) -> int:
    """Bytes per unit for an OVF/DMTF programmatic unit such as ``byte * 2^20``."""
    if not units.strip():
        return 1
    m = _UNIT_RE.match(units)
    if m:
        base, exp = m.group(1), m.group(2)
        if base is None:
            return 1
        return int(base) ** int(exp) if exp is not None else int(base)
    word = units.strip().lower()
    if word in _UNIT_WORDS:
        return _UNIT_WORDS[word]
    raise ValueError(f"unknown allocation units {units!r}")


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, what: str) -> SourceError:
        return SourceError(f"{self.source}: invalid OVF: {what}")

    def int_of(self, value: str, what: str) -> int:
        try:
            return int(value.strip())
        except ValueError:
            raise self.fail(f"{what} is {value!r}, not an integer") from None

    def units(self, value: str, what: str) -> int:
        try:
            return parse_allocation_units(value)
        except ValueError as e:
            raise self.fail(f"{what}: {e}") from None

    def envelope(self, data: bytes) -> OvfEnvelope:
        if re.search(rb"<!\s*(DOCTYPE|ENTITY)", data[:65536], re.IGNORECASE):
            raise self.fail("a DOCTYPE or ENTITY declaration is not allowed")
        namespaces: set[str] = set()
        try:
            for _event, (_prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
                namespaces.add(uri)
            root = ET.fromstring(data)
        except ET.ParseError as e:
            raise self.fail(f"not well-formed XML ({e})") from None
        if _local(root.tag) != "Envelope":
            raise self.fail(f"the root element is <{_local(root.tag)}>, not <Envelope>")

        files: dict[str, OvfFile] = {}
        refs = _child(root, "References")
        for f in _children(refs, "File") if refs is not None else []:
            fid, href = _attr(f, "id"), _attr(f, "href")
            if not fid or not href:
                raise self.fail("a References/File lacks ovf:id or ovf:href")
            size = _attr(f, "size")
            chunk = _attr(f, "chunkSize")
            files[fid] = OvfFile(
                fid,
                href,
                self.int_of(size, f"size of file {href}") if size else None,
                _attr(f, "compression"),
                self.int_of(chunk, f"chunkSize of file {href}") if chunk else None,
            )

        disks: dict[str, OvfDisk] = {}
        section = _child(root, "DiskSection")
        for d in _children(section, "Disk") if section is not None else []:
            disk_id = _attr(d, "diskId")
            if not disk_id:
                raise self.fail("a DiskSection/Disk lacks ovf:diskId")
            cap_text = _attr(d, "capacity")
            if not cap_text:
                raise self.fail(f"disk {disk_id} has no ovf:capacity")
            units = _attr(d, "capacityAllocationUnits", "byte")
            capacity = self.int_of(cap_text, f"capacity of disk {disk_id}") * self.units(
                units, f"capacityAllocationUnits of disk {disk_id}"
            )
            file_ref = _attr(d, "fileRef")
            if file_ref and file_ref not in files:
                raise self.fail(f"disk {disk_id} refers to file {file_ref!r}, not in References")
            populated = _attr(d, "populatedSize")
            disks[disk_id] = OvfDisk(
                disk_id=disk_id,
                capacity=capacity,
                capacity_units=units,
                file_ref=file_ref,
                file=files.get(file_ref),
                format=_attr(d, "format"),
                populated_size=self.int_of(populated, "populatedSize") if populated else None,
            )

        networks: list[OvfNetwork] = []
        net_section = _child(root, "NetworkSection")
        for n in _children(net_section, "Network") if net_section is not None else []:
            name = _attr(n, "name")
            if name:
                networks.append(OvfNetwork(name, _text(n, "Description")))

        systems = [
            self.system(vs, disks) for vs in root.iter() if _local(vs.tag) == "VirtualSystem"
        ]
        if not systems:
            raise self.fail("no VirtualSystem in the envelope")

        source = "Unknown"
        for uri in namespaces:
            if uri in _SOURCE_NAMESPACES:
                source = _SOURCE_NAMESPACES[uri]
                break
        else:
            if any(VMW_NS in uri for uri in namespaces):
                source = "VMware"
        return OvfEnvelope(tuple(files.values()), tuple(networks), tuple(systems), source)

    def system(self, vs: ET.Element, disks: dict[str, OvfDisk]) -> OvfVirtualSystem:
        vs_id = _attr(vs, "id")
        name = _text(vs, "Name") or vs_id
        if not name:
            raise self.fail("a VirtualSystem has neither ovf:id nor Name")
        where = f"VirtualSystem {name!r}"
        os_section = _child(vs, "OperatingSystemSection")
        os_id = os_type = os_desc = ""
        if os_section is not None:
            os_id = _attr(os_section, "id")
            os_type = _attr(os_section, "osType")
            os_desc = _text(os_section, "Description")
        hw = _child(vs, "VirtualHardwareSection")
        if hw is None:
            raise self.fail(f"{where} has no VirtualHardwareSection")

        cpus, cores, memory_mb = 1, 1, 0
        config: dict[str, str] = {}
        controllers: dict[str, str] = {}
        disk_items: list[tuple[str, str, str]] = []  # disk id, parent, element name
        nics: list[OvfNic] = []
        devices: list[str] = []
        items = [c for c in hw if _local(c.tag) in ("Item", "StorageItem", "EthernetPortItem")]
        for item in items:
            rtype = _text(item, "ResourceType")
            element_name = _text(item, "ElementName") or _text(item, "Description")
            if rtype == RT_CPU:
                cpus = self.int_of(_text(item, "VirtualQuantity", "1"), f"{where} CPU count")
                cps = _text(item, "CoresPerSocket")
                if cps:
                    cores = self.int_of(cps, f"{where} CoresPerSocket")
            elif rtype == RT_MEMORY:
                qty = self.int_of(_text(item, "VirtualQuantity", "0"), f"{where} memory")
                unit = self.units(_text(item, "AllocationUnits", "byte * 2^20"), f"{where} memory")
                memory_mb = qty * unit // (1024 * 1024)
            elif rtype in (RT_IDE, RT_SCSI, RT_OTHER_STORAGE):
                subtype = _text(item, "ResourceSubType").lower()
                if rtype == RT_IDE:
                    bus = "ide"
                elif rtype == RT_SCSI:
                    bus = "scsi"
                elif "nvme" in subtype:
                    bus = "nvme"
                else:
                    bus = "sata"
                controllers[_text(item, "InstanceID")] = bus
            elif rtype == RT_DISK:
                resource = _text(item, "HostResource")
                disk_id = resource.rsplit("/", 1)[-1] if resource else ""
                if disk_id not in disks:
                    raise self.fail(f"{where} attaches unknown disk {resource!r}")
                disk_items.append((disk_id, _text(item, "Parent"), element_name))
            elif rtype == RT_ETHERNET:
                nics.append(
                    OvfNic(
                        name=element_name or f"Network adapter {len(nics) + 1}",
                        network=_text(item, "Connection"),
                        mac=_text(item, "Address").lower(),
                        model=_text(item, "ResourceSubType"),
                    )
                )
            elif element_name:
                devices.append(re.sub(r"[\s\d]+$", "", element_name) or element_name)
        for cfg in hw:
            if _local(cfg.tag) in ("Config", "ExtraConfig"):
                key = _attr(cfg, "key")
                if key:
                    config[key] = _attr(cfg, "value")
        if cpus < 1:
            raise self.fail(f"{where} has {cpus} CPUs")

        vm_disks: list[OvfDisk] = []
        for disk_id, parent, element_name in disk_items:
            d = disks[disk_id]
            vm_disks.append(
                OvfDisk(
                    **{
                        **d.__dict__,
                        "bus": controllers.get(parent, ""),
                        "element_name": element_name,
                    }
                )
            )
        if not disk_items:
            vm_disks = list(disks.values())  # no hardware items: every disk belongs to it
        firmware = config.get("firmware", "bios").lower()
        return OvfVirtualSystem(
            id=vs_id,
            name=name,
            cpus=cpus,
            cores_per_socket=max(1, cores),
            memory_mb=memory_mb,
            firmware="efi" if firmware in ("efi", "uefi") else "bios",
            os_id=os_id,
            os_type=os_type,
            os_description=os_desc,
            disks=tuple(vm_disks),
            nics=tuple(nics),
            devices=tuple(devices),
            config=config,
        )


def parse_ovf(data: bytes, source: str) -> OvfEnvelope:
    """Parse an OVF descriptor; ``source`` names it (``x.ova:x.ovf``) in every error.

    :raises SourceError: for XML that is not well-formed or an envelope that is inconsistent
        (unknown disk references, non-numeric sizes, no VirtualSystem).
    """
    return _Parser(source).envelope(data)
