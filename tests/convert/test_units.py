"""The parts of guest conversion that need no guest: the domain XML, the OS check, the probe."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from reconciler.convert import kvm
from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec, domain_xml
from reconciler.convert.v2v import error_message, holds_os


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


def test_conversion_job_attaches_every_pvc_and_asks_for_kvm_when_offered() -> None:
    import threading

    from reconciler.targets.base import ConvertRequest, DiskClaim
    from reconciler.targets.kubevirt.convert_job import KVM_RESOURCE, convert_job, convert_name
    from reconciler.targets.kubevirt.transfer_job import JobSettings

    def claim(name: str, mode: str) -> DiskClaim:
        return DiskClaim(name, "vms", 1 << 30, {"spec": {"volumeMode": mode}})

    request = ConvertRequest(
        claims=(claim("web-disk-0", "Block"), claim("web-disk-1", "Filesystem")),
        guest=GuestSpec(
            name="web",
            disks=(GuestDisk(Path(), "scsi"), GuestDisk(Path(), "sata")),
            nics=(GuestNic("00:50:56:01:02:03", "vmxnet3", "VM Network"),),
        ),
        labels={"plan": "p1", "migration": "m1"},
        on_progress=lambda line: None,
        halt=threading.Event(),
    )
    assert convert_name(request) == "p1-web-convert"
    job = convert_job(request, "p1-web-convert", JobSettings(), kvm=True)
    spec = job["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]] == [
        "web-disk-0",
        "web-disk-1",
    ]
    assert container["volumeDevices"] == [{"name": "disk-0", "devicePath": "/dev/disk0"}]
    assert container["volumeMounts"] == [{"name": "disk-1", "mountPath": "/disks/1"}]
    cmd = container["command"]
    assert cmd[:2] == ["mtv-gitops", "convert-guest"]
    assert cmd[cmd.index("--disk") : cmd.index("--disk") + 4] == [
        "--disk",
        "/dev/disk0",
        "--bus",
        "scsi",
    ]
    assert container["resources"]["limits"][KVM_RESOURCE] == "1"
    assert "env" not in container
    software = convert_job(request, "p1-web-convert", JobSettings(), kvm=False)
    [container] = software["spec"]["template"]["spec"]["containers"]
    assert KVM_RESOURCE not in container["resources"]["limits"]
    assert container["env"] == [{"name": "MTV_GITOPS_FORCE_TCG", "value": "1"}]


def test_virt_v2v_error_is_found_inside_a_line_another_write_cut_into() -> None:
    """Seen in a make test run: the appliance's debug output landed inside virt-v2v's message
    line, and the VM's error said only "exited with 1"."""
    line = "inspecvirt-v2v-in-place: error: inspection could not detect the source guest."
    assert error_message(line) == "inspection could not detect the source guest."
    assert error_message("virt-v2v: error: no space") == "no space"
    assert error_message("libguestfs: trace: inspect_os") == ""
