"""Run ``virt-v2v-in-place`` over a guest's raw images and read what it found and changed.

The images are changed in place (the copy on the target is what is converted; the source is
never touched).  The whole log is kept beside the images; a failure raises
:class:`ConversionFailed` with virt-v2v's own message and the log's last lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.convert import kvm
from reconciler.convert.domain import GuestSpec, domain_xml

TAIL_LINES = 20
_PROGRESS = re.compile(r"^\[\s*\d+\.\d\] (.*)$")  # virt-v2v's own, not the kernel's
_CONVERTING = re.compile(r"Converting (.+) to run on KVM")
_GCAPS = re.compile(r"^\s*gcaps_(\w+) = (.*)$")
# anywhere in a line: virt-v2v's message and its appliance's debug output share the pipe, and
# a debug write can land inside the message's line ("inspecvirt-v2v-in-place: error: ...")
_ERROR = re.compile(r"virt-v2v(?:-in-place)?: error: (.*)$")
_INSPECT = re.compile(r"^i_(\w+) = (.*)$")  # what inspection found (virt-v2v -v)


def error_message(line: str) -> str:
    """virt-v2v's own error message in a line of its output, or "" when the line has none."""
    m = _ERROR.search(line)
    return m.group(1) if m else ""


class ConversionFailed(Exception):
    """virt-v2v could not convert the guest: its own message, and the log's last lines."""

    def __init__(self, message: str, tail: list[str], log: Path | None = None) -> None:
        super().__init__(message)
        self.tail = tail
        self.log = log


@dataclass(frozen=True)
class Conversion:
    """What virt-v2v found and made of the guest."""

    os: str  # the product name it inspected ("Debian GNU/Linux 12 (bookworm)")
    osinfo: str  # libosinfo's short id ("debian12"), as KubeVirt's preferences name guests
    distro: str
    block_bus: str  # the bus its disks are on now (virtio-blk, or ide when none fits)
    net_bus: str  # virtio-net, e1000 or rtl8139
    machine: str  # i440fx, q35 or virt
    firmware: str  # bios | efi
    virtio_drivers: bool  # "This guest has virtio drivers installed."
    accel: str  # kvm | tcg: how the appliance ran
    seconds: float
    details: dict[str, str] = field(default_factory=dict)  # every gcaps_* virt-v2v printed

    @property
    def virtio(self) -> dict[str, bool]:
        """Per device class: does it use virtio after conversion."""
        return {
            "disk": self.block_bus.startswith("virtio"),
            "network": self.net_bus.startswith("virtio"),
        }


def available() -> str:
    """ "" when virt-v2v-in-place and what it needs are installed, else what is missing."""
    missing = [
        tool for tool in ("virt-v2v-in-place", "nbdkit", "nbdinfo") if shutil.which(tool) is None
    ]
    if not missing:
        return ""
    return (
        f"{', '.join(missing)} not installed (Debian: apt-get install virt-v2v libguestfs-tools "
        "linux-image-amd64 nbdkit libnbd-bin; make install does it as root)"
    )


def holds_os(paths: list[Path]) -> bool:
    """Whether any image starts like a bootable disk (an MBR boot signature or a GPT header).

    A disk that has neither cannot hold a guest virt-v2v could inspect: such VMs (synthetic
    demo disks) skip conversion, saying so, instead of failing in virt-v2v after a minute."""
    for path in paths:
        with path.open("rb") as f:
            head = f.read(1024)
        if len(head) >= 520 and (head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART"):
            return True
    return False


def convert_in_place(
    spec: GuestSpec,
    workdir: Path,
    on_line: Callable[[str], None] | None = None,
    timeout: float = 3600.0,
) -> Conversion:
    """Convert the guest whose images ``spec`` names, in place; ``workdir`` keeps the domain
    XML and ``virt-v2v.log``.  ``VIRTIO_WIN`` in the environment points virt-v2v at the
    virtio-win drivers (Windows guests)."""
    missing = available()
    if missing:
        raise ConversionFailed(f"cannot convert: {missing}", [])
    workdir.mkdir(parents=True, exist_ok=True)
    xml = workdir / "domain.xml"
    xml.write_text(domain_xml(spec))
    log = workdir / "virt-v2v.log"
    accel = kvm.probe()
    env = {**os.environ, **kvm.appliance_env(), "LC_ALL": "C.UTF-8"}
    argv = ["virt-v2v-in-place", "-v", "-i", "libvirtxml", str(xml)]
    started = time.monotonic()
    tail: list[str] = []
    facts: dict[str, str] = {}
    inspected: dict[str, str] = {}
    product = errors = ""
    virtio_drivers = False
    with log.open("w") as out:
        out.write(f"# {' '.join(argv)}\n# appliance: {accel.mode} ({accel.reason})\n")
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
            cwd=workdir,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            line = line.rstrip("\n")
            tail = (tail + [line])[-TAIL_LINES:]
            if m := _PROGRESS.match(line):
                if on_line:
                    on_line(m.group(1))
            if m := _CONVERTING.search(line):
                product = m.group(1)
            if m := _GCAPS.match(line):
                facts[m.group(1)] = m.group(2).strip()
            if m := _INSPECT.match(line):
                inspected.setdefault(m.group(1), m.group(2).strip())
            if message := error_message(line):
                errors = message
            if "has virtio drivers installed" in line:
                virtio_drivers = True
            if time.monotonic() - started > timeout:
                proc.kill()
        code = proc.wait()
    seconds = time.monotonic() - started
    if code != 0:
        message = errors or f"virt-v2v-in-place exited with {code}"
        raise ConversionFailed(f"virt-v2v: {message}", _quiet(tail), log)
    return Conversion(
        os=_os_name(inspected.get("distro", ""), inspected.get("product_name") or product),
        osinfo=inspected.get("osinfo", ""),
        distro=inspected.get("distro", ""),
        block_bus=facts.get("block_bus", ""),
        net_bus=facts.get("net_bus", ""),
        machine=facts.get("machine", ""),
        firmware="efi" if "efi" in inspected.get("firmware", spec.firmware).lower() else "bios",
        virtio_drivers=virtio_drivers,
        accel=accel.mode,
        seconds=seconds,
        details=facts,
    )


def _os_name(distro: str, product: str) -> str:
    """ "Debian 12.15" where inspection gives the product as a bare version (Debian's is
    /etc/debian_version), else the product name ("Red Hat Enterprise Linux 9.2 (Plow)")."""
    if not product or product == "unknown":
        return distro or "unknown"
    if distro and distro.lower() not in product.lower() and product[:1].isdigit():
        return f"{distro.capitalize()} {product}"
    return product


def _quiet(tail: list[str]) -> list[str]:
    """The last lines without libguestfs' protocol chatter."""
    return [line for line in tail if not line.startswith(("libguestfs: trace", "guestfsd:"))]
