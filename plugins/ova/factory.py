"""Build real OVA files (OVF 1.0 + streamOptimized VMDKs) for the demo and the tests.

The OVA looks like a VMware export: the OVF descriptor first, then a SHA256 manifest, then
the disks, in a USTAR tar.  Disk content comes from a sparse raw image (holes stay holes, so
the VMDK has unallocated grains) converted by ``qemu-img``; each built disk reports the digest
of its logical content so a migration can be checked end to end.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW_NS = "http://www.vmware.com/schema/ovf"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
VMDK_STREAM_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

# CIM operating-system ids VMware writes beside vmw:osType (CIM_OperatingSystem.OsType).
_CIM_OS_IDS = {
    "otherGuest": 1,
    "windows9_64Guest": 103,
    "windows2019srv_64Guest": 103,
    "rhel8_64Guest": 80,
    "rhel9_64Guest": 80,
    "centos7_64Guest": 107,
    "centos8_64Guest": 107,
    "ubuntu64Guest": 94,
    "debian11_64Guest": 96,
    "other3xLinux64Guest": 101,
    "other4xLinux64Guest": 101,
}
_CONTROLLERS = {"scsi": (6, "VirtualSCSI", "SCSI controller"), "ide": (5, "PIIX4", "IDE")}
_CONTROLLERS["sata"] = (20, "vmware.sata.ahci", "SATA controller")

DiskGenerator = Callable[[BinaryIO], None]


@dataclass(frozen=True)
class DiskSpec:
    """One disk to build: its capacity and what to write into the otherwise sparse image.

    Either ``writes`` (``(offset, bytes)`` pairs) or ``generator`` (called with the raw image
    opened ``r+b``, already truncated to ``capacity``) fills it; both may be given.
    """

    capacity: int
    writes: Sequence[tuple[int, bytes]] = ()
    generator: DiskGenerator | None = None
    bus: str = "scsi"  # scsi | ide | sata


@dataclass(frozen=True)
class NicSpec:
    """One network adapter: the OVF network it connects to and its MAC address."""

    network: str
    mac: str
    model: str = "VmxNet3"


@dataclass(frozen=True)
class BuiltDisk:
    """What was written for one disk."""

    disk_id: str  # OVF diskId
    file: str  # member name in the OVA
    capacity: int
    vmdk_size: int
    digest: str  # logical-content digest (see ``digest_kind``)
    digest_kind: str  # "disk_digest" (reconciler.transfer.digest) or "sha256-raw"
    raw_path: Path | None = None  # kept raw image, when ``keep_raw_dir`` was given


@dataclass(frozen=True)
class OvaInfo:
    """What :func:`build_ova` wrote, for tests and the demo to compare against."""

    path: Path
    name: str
    system_id: str
    cpus: int
    cores_per_socket: int
    memory_mb: int
    firmware: str
    os_type: str
    disks: list[BuiltDisk] = field(default_factory=list)
    nics: list[NicSpec] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)


def semi_random(length: int, seed: int = 0) -> bytes:
    """Content that is unique per 4 KiB yet compresses well, so zlib in qemu-img stays fast.

    Each 4 KiB block is 256 random bytes repeated 16 times: a misplaced or stale block is
    still detected, while deflate runs several times faster than on random data.
    """
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(-(-length // 4096)):
        out += rng.randbytes(256) * 16
    return bytes(out[:length])


def scattered(capacity: int, data: int, pieces: int, seed: int) -> list[tuple[int, bytes]]:
    """``data`` bytes in ``pieces`` runs spread over a disk of ``capacity``, holes between (the
    demos' disks: mostly empty, as real ones are)."""
    mib = 1024 * 1024
    step, size = capacity // pieces, data // pieces
    return [
        (i * step + (step - size) // 2 // mib * mib, semi_random(size, seed * 1000 + i))
        for i in range(pieces)
    ]


def _logical_digest(raw: Path) -> tuple[str, str]:
    """The digest the transfer engine will compare against, else plain sha256 of the image."""
    try:
        from reconciler.transfer.digest import disk_digest_of_file  # type: ignore[import-not-found]
    except ImportError:
        h = hashlib.sha256()
        with open(raw, "rb") as f:
            while chunk := f.read(4 * 1024 * 1024):
                h.update(chunk)
        return h.hexdigest(), "sha256-raw"
    return disk_digest_of_file(raw), "disk_digest"


def _write_raw(path: Path, spec: DiskSpec) -> None:
    with open(path, "wb") as f:
        f.truncate(spec.capacity)
    with open(path, "r+b") as f:
        for offset, data in spec.writes:
            if offset < 0 or offset + len(data) > spec.capacity:
                raise ValueError(f"write of {len(data)} bytes at {offset} exceeds the capacity")
            f.seek(offset)
            f.write(data)
        if spec.generator is not None:
            spec.generator(f)


def _convert(raw: Path, vmdk: Path) -> None:
    proc = subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"]
        + [str(raw), str(vmdk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"qemu-img convert failed: {proc.stderr.strip()}")


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _sub(
    parent: ET.Element, ns: str, tag: str, text: str | None = None, **attrs: str
) -> ET.Element:
    el = ET.SubElement(parent, _q(ns, tag), attrs)
    if text is not None:
        el.text = text
    return el


def _ovf_attrs(**attrs: str) -> dict[str, str]:
    return {_q(OVF_NS, k): v for k, v in attrs.items()}


def _rasd_item(hw: ET.Element, values: dict[str, str], parent_tag: str = "Item") -> ET.Element:
    item = _sub(hw, OVF_NS, parent_tag)
    for key in sorted(values):  # the CIM schema orders rasd elements alphabetically
        _sub(item, RASD_NS, key, values[key])
    return item


def build_ovf(
    *,
    name: str,
    system_id: str,
    cpus: int,
    cores_per_socket: int,
    memory_mb: int,
    firmware: str,
    os_type: str,
    disks: Sequence[tuple[DiskSpec, BuiltDisk]],
    nics: Sequence[NicSpec],
) -> bytes:
    """An OVF 1.0 envelope in the shape vSphere exports."""
    for prefix, ns in (
        ("ovf", OVF_NS),
        ("rasd", RASD_NS),
        ("vssd", VSSD_NS),
        ("vmw", VMW_NS),
        ("xsi", XSI_NS),
    ):
        ET.register_namespace(prefix, ns)
    env = ET.Element(_q(OVF_NS, "Envelope"), {_q(VMW_NS, "buildId"): "build-mtv-gitops"})
    refs = _sub(env, OVF_NS, "References")
    for i, (_, built) in enumerate(disks, 1):
        _sub(refs, OVF_NS, "File", **_ovf_attrs(href=built.file, id=f"file{i}"))
        refs[-1].set(_q(OVF_NS, "size"), str(built.vmdk_size))
    disk_section = _sub(env, OVF_NS, "DiskSection")
    _sub(disk_section, OVF_NS, "Info", "Virtual disk information")
    for i, (_, built) in enumerate(disks, 1):
        attrs = _ovf_attrs(
            capacity=str(built.capacity),
            capacityAllocationUnits="byte",
            diskId=built.disk_id,
            fileRef=f"file{i}",
            format=VMDK_STREAM_FORMAT,
        )
        _sub(disk_section, OVF_NS, "Disk", **attrs)
    networks = list(dict.fromkeys(n.network for n in nics))
    net_section = _sub(env, OVF_NS, "NetworkSection")
    _sub(net_section, OVF_NS, "Info", "The list of logical networks")
    for net in networks:
        el = _sub(net_section, OVF_NS, "Network", **_ovf_attrs(name=net))
        _sub(el, OVF_NS, "Description", f"The {net} network")
    vs = _sub(env, OVF_NS, "VirtualSystem", **_ovf_attrs(id=system_id))
    _sub(vs, OVF_NS, "Info", "A virtual machine")
    _sub(vs, OVF_NS, "Name", name)
    os_section = _sub(
        vs, OVF_NS, "OperatingSystemSection", **_ovf_attrs(id=str(_CIM_OS_IDS.get(os_type, 1)))
    )
    os_section.set(_q(VMW_NS, "osType"), os_type)
    _sub(os_section, OVF_NS, "Info", "The kind of installed guest operating system")
    hw = _sub(vs, OVF_NS, "VirtualHardwareSection")
    _sub(hw, OVF_NS, "Info", "Virtual hardware requirements")
    system = _sub(hw, OVF_NS, "System")
    _sub(system, VSSD_NS, "ElementName", "Virtual Hardware Family")
    _sub(system, VSSD_NS, "InstanceID", "0")
    _sub(system, VSSD_NS, "VirtualSystemIdentifier", name)
    _sub(system, VSSD_NS, "VirtualSystemType", "vmx-14")
    instance = 1
    cpu = _rasd_item(
        hw,
        {
            "AllocationUnits": "hertz * 10^6",
            "Description": "Number of Virtual CPUs",
            "ElementName": f"{cpus} virtual CPU(s)",
            "InstanceID": str(instance),
            "ResourceType": "3",
            "VirtualQuantity": str(cpus),
        },
    )
    _sub(cpu, VMW_NS, "CoresPerSocket", str(cores_per_socket)).set(_q(OVF_NS, "required"), "false")
    instance += 1
    _rasd_item(
        hw,
        {
            "AllocationUnits": "byte * 2^20",
            "Description": "Memory Size",
            "ElementName": f"{memory_mb}MB of memory",
            "InstanceID": str(instance),
            "ResourceType": "4",
            "VirtualQuantity": str(memory_mb),
        },
    )
    controllers: dict[str, int] = {}
    for spec, _ in disks:
        if spec.bus not in _CONTROLLERS:
            raise ValueError(f"unknown disk bus {spec.bus!r}")
        if spec.bus not in controllers:
            instance += 1
            rtype, subtype, label = _CONTROLLERS[spec.bus]
            _rasd_item(
                hw,
                {
                    "Address": "0",
                    "Description": f"{label} 0",
                    "ElementName": f"{label} 0",
                    "InstanceID": str(instance),
                    "ResourceSubType": subtype,
                    "ResourceType": str(rtype),
                },
            )
            controllers[spec.bus] = instance
    slots: dict[str, int] = {}
    for n, (spec, built) in enumerate(disks, 1):
        instance += 1
        slot = slots.get(spec.bus, 0)
        slots[spec.bus] = slot + 1
        _rasd_item(
            hw,
            {
                "AddressOnParent": str(slot),
                "ElementName": f"Hard disk {n}",
                "HostResource": f"ovf:/disk/{built.disk_id}",
                "InstanceID": str(instance),
                "Parent": str(controllers[spec.bus]),
                "ResourceType": "17",
            },
        )
    for n, nic in enumerate(nics, 1):
        instance += 1
        _rasd_item(
            hw,
            {
                "Address": nic.mac,
                "AddressOnParent": str(6 + n),
                "AutomaticAllocation": "true",
                "Connection": nic.network,
                "Description": f'{nic.model} ethernet adapter on "{nic.network}"',
                "ElementName": f"Network adapter {n}",
                "InstanceID": str(instance),
                "ResourceSubType": nic.model,
                "ResourceType": "10",
            },
        )
    cfg = _sub(hw, VMW_NS, "Config", **_ovf_attrs(required="false"))
    cfg.set(_q(VMW_NS, "key"), "firmware")
    cfg.set(_q(VMW_NS, "value"), firmware)
    ET.indent(env)
    return ET.tostring(env, encoding="UTF-8", xml_declaration=True) + b"\n"


def _add_member(
    tar: tarfile.TarFile, name: str, data: bytes | Path, size: int | None = None
) -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if isinstance(data, bytes):
        info.size = len(data) if size is None else size
        tar.addfile(info, io.BytesIO(data[: info.size]))
    else:
        info.size = data.stat().st_size if size is None else size
        with open(data, "rb") as f:
            tar.addfile(info, f)


def build_ova(
    path: str | Path,
    name: str,
    *,
    cpus: int = 2,
    cores_per_socket: int = 1,
    memory_mb: int = 2048,
    firmware: str = "bios",
    os_type: str = "centos7_64Guest",
    disks: Sequence[DiskSpec] = (),
    nics: Sequence[NicSpec] = (),
    system_id: str | None = None,
    keep_raw_dir: str | Path | None = None,
    omit_disks: Collection[int] = (),
    truncate_disks: Mapping[int, int] | None = None,
) -> OvaInfo:
    """Write a VMware-style OVA at ``path`` and describe what is in it.

    ``system_id`` is the VirtualSystem ``ovf:id`` (VMware writes the VM name there).
    ``keep_raw_dir`` keeps each raw image there (``<name>-disk<N>.raw``) for byte comparisons.
    ``omit_disks`` (disk indexes) leaves files out of the tar while the OVF still references
    them; ``truncate_disks`` maps a disk index to the number of VMDK bytes to store: both make
    broken OVAs for tests.
    """
    path = Path(path)
    truncate_disks = dict(truncate_disks or {})
    work = Path(tempfile.mkdtemp(prefix="mtv-ova-build-", dir=path.parent))
    try:

        def make(i: int, spec: DiskSpec) -> tuple[DiskSpec, BuiltDisk]:
            raw = work / f"disk{i + 1}.raw"
            vmdk = work / f"{name}-disk{i + 1}.vmdk"
            _write_raw(raw, spec)
            _convert(raw, vmdk)
            digest, kind = _logical_digest(raw)
            kept: Path | None = None
            if keep_raw_dir is not None:
                kept = Path(keep_raw_dir) / f"{name}-disk{i + 1}.raw"
                kept.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(raw, kept)
            else:
                raw.unlink()
            disk = BuiltDisk(
                disk_id=f"vmdisk{i + 1}",
                file=vmdk.name,
                capacity=spec.capacity,
                vmdk_size=vmdk.stat().st_size,
                digest=digest,
                digest_kind=kind,
                raw_path=kept,
            )
            return spec, disk

        # qemu-img convert (zlib) dominates: one disk per core.
        workers = max(1, min(len(disks), os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            built = list(pool.map(make, range(len(disks)), disks))
        vmdks = [work / b.file for _, b in built]
        ovf = build_ovf(
            name=name,
            system_id=system_id or name,
            cpus=cpus,
            cores_per_socket=cores_per_socket,
            memory_mb=memory_mb,
            firmware=firmware,
            os_type=os_type,
            disks=built,
            nics=nics,
        )
        manifest = [f"SHA256({name}.ovf)= {hashlib.sha256(ovf).hexdigest()}"]
        for vmdk in vmdks:
            manifest.append(f"SHA256({vmdk.name})= {_sha256_file(vmdk)}")
        tmp_ova = path.with_name(path.name + ".part")
        with tarfile.open(tmp_ova, "w", format=tarfile.USTAR_FORMAT) as tar:
            _add_member(tar, f"{name}.ovf", ovf)
            _add_member(tar, f"{name}.mf", ("\n".join(manifest) + "\n").encode())
            for i, vmdk in enumerate(vmdks):
                if i in omit_disks:
                    continue
                _add_member(tar, vmdk.name, vmdk, truncate_disks.get(i))
        os.replace(tmp_ova, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OvaInfo(
        path=path,
        name=name,
        system_id=system_id or name,
        cpus=cpus,
        cores_per_socket=cores_per_socket,
        memory_mb=memory_mb,
        firmware=firmware,
        os_type=os_type,
        disks=[b for _, b in built],
        nics=list(nics),
        networks=list(dict.fromkeys(n.network for n in nics)),
    )


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()
