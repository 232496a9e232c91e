"""Does KVM really work here? A tiny probe decides between KVM and software (TCG) mode.

``/dev/kvm`` can exist and still fail: on some nested hosts qemu aborts as soon as it sets up
a KVM vCPU ("failed to set MSR 0x10a").  The probe starts qemu paused with KVM and asks it to
quit over QMP; qemu that comes back cleanly means KVM works.  It takes well under a second and
is asked once per process.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Accel:
    """What the probe found: ``kvm`` or ``tcg``, and why, for status and logs."""

    mode: str
    reason: str

    @property
    def software(self) -> bool:
        return self.mode == "tcg"


@functools.cache
def probe() -> Accel:
    """KVM when a paused qemu with KVM starts and quits cleanly, else TCG (saying why)."""
    if os.environ.get("MTV_GITOPS_FORCE_TCG"):
        return Accel("tcg", "MTV_GITOPS_FORCE_TCG is set")
    if not os.path.exists("/dev/kvm"):
        return Accel("tcg", "/dev/kvm does not exist")
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Accel("tcg", "/dev/kvm is not usable by this user")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return Accel("tcg", "qemu-system-x86_64 is not installed, KVM not probed")
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'
    argv = [qemu, "-machine", "pc,accel=kvm", "-cpu", "host", "-nodefaults", "-display", "none"]
    argv += ["-m", "64", "-S", "-qmp", "stdio"]
    try:
        proc = subprocess.run(
            argv, input=qmp, capture_output=True, text=True, timeout=PROBE_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return Accel("tcg", "a qemu KVM probe did not answer")
    if proc.returncode == 0:
        return Accel("kvm", "/dev/kvm works (qemu KVM probe passed)")
    why = next(iter(proc.stderr.strip().splitlines()), f"exit {proc.returncode}")
    return Accel("tcg", f"/dev/kvm exists but qemu with KVM fails here ({why})")


def appliance_env() -> dict[str, str]:
    """Environment for libguestfs tools (virt-v2v): its appliance in software mode unless
    KVM really works."""
    env = {"LIBGUESTFS_BACKEND": "direct"}
    if probe().software:
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return env


def qemu_accel() -> str:
    """``kvm`` or ``tcg`` for ``qemu-system-x86_64 -machine accel=``."""
    return probe().mode
