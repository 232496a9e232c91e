"""The parts of guest conversion that need no guest: the domain XML, the OS check, the probe."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from reconciler.convert import kvm
from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec, domain_xml
from reconciler.convert.v2v import holds_os


def test_domain_xml_has_firmware_disks_in_order_and_nics() -> None:
    spec = GuestSpec(
        name="web",
        firmware="efi",
        memory_mb=2048,
        cpus=2,
        disks=(
            GuestDisk(Path("/t/web-disk-0.img"), "scsi"),
            GuestDisk(Path("/t/web-disk-1.img"), "scsi"),
            GuestDisk(Path("/t/web-disk-2.img"), "sata"),
        ),
        nics=(GuestNic("00:50:56:01:02:03", "VmxNet3", "VM Network"),),
    )
    dom = ET.fromstring(domain_xml(spec))
    assert dom.find("os").get("firmware") == "efi"
    assert dom.find("memory").text == "2048"
    disks = dom.findall("devices/disk")
    assert [d.find("source").get("file") for d in disks] == [
        "/t/web-disk-0.img",
        "/t/web-disk-1.img",
        "/t/web-disk-2.img",
    ]
    # the guest named its disks sda, sdb ... on the source: virt-v2v remaps those names
    assert [d.find("target").get("dev") for d in disks] == ["sda", "sdb", "sdc"]
    assert [d.find("target").get("bus") for d in disks] == ["scsi", "scsi", "sata"]
    assert all(d.find("driver").get("type") == "raw" for d in disks)
    nic = dom.find("devices/interface")
    assert nic.find("mac").get("address") == "00:50:56:01:02:03"
    assert nic.find("model").get("type") == "vmxnet3"


def test_bios_guest_has_no_firmware_attribute() -> None:
    dom = ET.fromstring(domain_xml(GuestSpec(name="x")))
    assert dom.find("os").get("firmware") is None


def test_holds_os_sees_a_boot_sector_or_gpt_and_not_a_blank_disk(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 4096)
    mbr = tmp_path / "mbr.img"
    mbr.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 1024)
    gpt = tmp_path / "gpt.img"
    gpt.write_bytes(b"\0" * 512 + b"EFI PART" + b"\0" * 1024)
    assert not holds_os([blank])
    assert holds_os([blank, mbr])
    assert holds_os([gpt])


def test_probe_decides_and_says_why() -> None:
    found = kvm.probe()
    assert found.mode in ("kvm", "tcg")
    assert found.reason
    env = kvm.appliance_env()
    assert env["LIBGUESTFS_BACKEND"] == "direct"
    assert ("LIBGUESTFS_BACKEND_SETTINGS" in env) == found.software
