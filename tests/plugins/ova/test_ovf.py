"""OVF parsing: what the factory writes reads back; broken descriptors fail with a clear name."""

from __future__ import annotations

import pytest

from plugins.ova.factory import BuiltDisk, DiskSpec, NicSpec, build_ovf
from plugins.ova.ovf import parse_allocation_units, parse_ovf
from reconciler.sources import SourceError

GiB = 1024**3


def _ovf(**kw: object) -> bytes:
    disks = [
        (
            DiskSpec(20 * GiB),
            BuiltDisk("vmdisk1", "vm-disk1.vmdk", 20 * GiB, 1234, "d", "k"),
        ),
        (
            DiskSpec(GiB, bus="ide"),
            BuiltDisk("vmdisk2", "vm-disk2.vmdk", GiB, 99, "d", "k"),
        ),
    ]
    args: dict = dict(
        name="db01",
        system_id="db01",
        cpus=8,
        cores_per_socket=4,
        memory_mb=16384,
        firmware="efi",
        os_type="centos7_64Guest",
        disks=disks,
        nics=[NicSpec("VM Network", "00:50:56:AA:00:01"), NicSpec("Backup", "00:50:56:aa:00:02")],
    )
    args.update(kw)
    return build_ovf(**args)


def test_factory_ovf_reads_back() -> None:
    env = parse_ovf(_ovf(), "db01.ova:db01.ovf")
    assert env.source == "VMware"
    assert [n.name for n in env.networks] == ["VM Network", "Backup"]
    assert [(f.href, f.size) for f in env.files] == [("vm-disk1.vmdk", 1234), ("vm-disk2.vmdk", 99)]
    (vs,) = env.systems
    assert (vs.id, vs.name) == ("db01", "db01")
    assert (vs.cpus, vs.cores_per_socket, vs.memory_mb) == (8, 4, 16384)
    assert vs.firmware == "efi"
    assert (vs.os_type, vs.os_id) == ("centos7_64Guest", "107")
    assert [(d.disk_id, d.capacity, d.file.href, d.bus) for d in vs.disks] == [
        ("vmdisk1", 20 * GiB, "vm-disk1.vmdk", "scsi"),
        ("vmdisk2", GiB, "vm-disk2.vmdk", "ide"),
    ]
    assert [(n.network, n.mac, n.model) for n in vs.nics] == [
        ("VM Network", "00:50:56:aa:00:01", "VmxNet3"),
        ("Backup", "00:50:56:aa:00:02", "VmxNet3"),
    ]


def test_firmware_defaults_to_bios() -> None:
    data = _ovf().replace(b'vmw:value="efi"', b'vmw:value="bios"')
    assert parse_ovf(data, "x").systems[0].firmware == "bios"
    data = _ovf().replace(b'vmw:key="firmware"', b'vmw:key="something"')
    assert parse_ovf(data, "x").systems[0].firmware == "bios"


@pytest.mark.parametrize(
    ("units", "factor"),
    [
        ("byte", 1),
        ("byte * 2^20", 1024**2),
        ("byte * 2^30", GiB),
        ("byte*1024", 1024),
        ("MegaBytes", 1024**2),
        ("GigaBytes", GiB),
        ("", 1),
    ],
)
def test_allocation_units(units: str, factor: int) -> None:
    assert parse_allocation_units(units) == factor


VBOX_OVF = b"""<?xml version="1.0"?>
<Envelope ovf:version="1.0" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References><File ovf:id="file1" ovf:href="box-disk001.vmdk"/></References>
  <DiskSection><Info>d</Info>
    <Disk ovf:capacity="10" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1"
      ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>n</Info><Network ovf:name="NAT"><Description>NAT</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="box">
    <Info>vm</Info>
    <OperatingSystemSection ovf:id="96"><Info>os</Info><Description>Debian_64</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity>
        <rasd:InstanceID>1</rasd:InstanceID></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity><rasd:InstanceID>2</rasd:InstanceID></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:HostResource>/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>NAT</rasd:Connection><rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:ElementName>cdrom1</rasd:ElementName><rasd:InstanceID>6</rasd:InstanceID>
        <rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def test_virtualbox_dialect() -> None:
    env = parse_ovf(VBOX_OVF, "box.ova:box.ovf")
    assert env.source == "VirtualBox"
    (vs,) = env.systems
    assert (vs.name, vs.cpus, vs.cores_per_socket, vs.memory_mb) == ("box", 2, 1, 1024)
    assert vs.firmware == "bios"
    assert (vs.os_id, vs.os_description) == ("96", "Debian_64")
    (disk,) = vs.disks
    assert (disk.capacity, disk.bus, disk.file.size) == (10 * GiB, "sata", None)
    (nic,) = vs.nics
    assert (nic.network, nic.mac, nic.model) == ("NAT", "", "E1000")
    assert vs.devices == ("cdrom",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<Envelope><oops></Envelope>", "not well-formed"),
        (b"<Other/>", "not <Envelope>"),
        (b"<Envelope/>", "no VirtualSystem"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><Envelope>&a;</Envelope>',
            "DOCTYPE",
        ),
        (VBOX_OVF.replace(b'ovf:capacity="10"', b'ovf:capacity="ten"'), "not an integer"),
        (VBOX_OVF.replace(b"/disk/vmdisk1", b"/disk/vmdisk9"), "unknown disk"),
        (VBOX_OVF.replace(b'ovf:fileRef="file1"', b'ovf:fileRef="file7"'), "not in References"),
        (VBOX_OVF.replace(b"MegaBytes", b"furlongs"), "unknown allocation units"),
    ],
)
def test_bad_ovf_names_file_and_problem(data: bytes, message: str) -> None:
    with pytest.raises(SourceError) as err:
        parse_ovf(data, "/ovas/bad.ova:bad.ovf")
    assert "/ovas/bad.ova:bad.ovf" in str(err.value)
    assert message in str(err.value)


def test_compression_and_chunking_are_recorded() -> None:
    data = VBOX_OVF.replace(
        b'ovf:href="box-disk001.vmdk"',
        b'ovf:href="box-disk001.vmdk" ovf:compression="gzip" ovf:chunkSize="1048576"',
    )
    (f,) = parse_ovf(data, "x").files
    assert (f.compression, f.chunk_size) == ("gzip", 1048576)
