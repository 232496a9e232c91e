"""A real, small, VMware-like Debian guest for the guest-conversion tests, and a boot check.

The guest is a minimal bookworm (``mmdebstrap``) with a kernel, grub on BIOS and a unit that
prints :data:`MARKER` on the serial console when the guest reaches multi-user.  It is made to
look like a guest exported from VMware, so that conversion has real work to do and booting it
unconverted on virtio fails:

- its initramfs is built with ``MODULES=list`` from a list of VMware's storage drivers (ahci,
  ata_piix, mptspi, vmw_pvscsi, sd_mod): no virtio module is in it, and Debian's kernel has
  virtio_blk and virtio_pci as modules, so on virtio-blk the initramfs never finds its root;
- ``open-vm-tools`` is installed;
- ``/etc/fstab`` names ``/dev/sda1``.

It is built once per content hash of this recipe under ``~/.cache/mtv-gitops/guest-<hash>/``
(temp dir + rename, so two processes never see half a guest) and takes a few minutes cold.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import git

from tests.support.workspace import USER_ENV, Workspace, write_repo

MARKER = "MTV-GITOPS-GUEST-READY"
# what initramfs-tools prints when it cannot find the root device (the negative control)
NO_ROOT = re.compile(r"Gave up waiting for root|ALERT! .* does not exist|\(initramfs\)")
SIZE = "1536M"
PACKAGES = (
    "linux-image-amd64",
    "grub-pc",
    "systemd-sysv",
    "initramfs-tools",
    "open-vm-tools",
    "e2fsprogs",
    "ifupdown",
    "udev",
)
INITRAMFS_MODULES = ("ahci", "ata_piix", "mptspi", "vmw_pvscsi", "sd_mod", "ext4", "crc32c")
UNIT = f"""[Unit]
Description=Tell the test that the guest reached multi-user
After=basic.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo {MARKER} > /dev/ttyS0'

[Install]
WantedBy=multi-user.target
"""
GRUB_DEFAULT = """GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 rootdelay=20"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
"""
FSTAB = "/dev/sda1 / ext4 errors=remount-ro 0 1\n"
# run inside the libguestfs appliance, where the disk is /dev/sda: grub on the MBR, its
# config, and an initramfs from the list above only
FINISH = """set -e
echo 'MODULES=list' > /etc/initramfs-tools/conf.d/mtv-gitops-vmware.conf
update-initramfs -u -k all
grub-install --target=i386-pc /dev/sda
update-grub
systemctl enable mtv-gitops-marker.service
"""


def recipe_hash() -> str:
    """The hash of everything that makes the guest: a changed recipe builds a new one."""
    parts = [
        SIZE,
        *PACKAGES,
        *INITRAMFS_MODULES,
        UNIT,
        GRUB_DEFAULT,
        FSTAB,
        FINISH,
        "bookworm",
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"


def guestfs_env() -> dict[str, str]:
    """libguestfs in software mode unless KVM really works (see reconciler.convert.kvm)."""
    from reconciler.convert.kvm import appliance_env

    return {**os.environ, **appliance_env()}


@dataclass(frozen=True)
class Guest:
    """A built guest: its raw disk (read-only: copy it before changing it) and build time."""

    disk: Path
    build_seconds: float
    cached: bool


_lock = threading.Lock()


def ensure_guest(log=print) -> Guest:
    """The cached guest, built now when missing (a few minutes)."""
    folder = cache_root() / f"guest-{recipe_hash()}"
    disk = folder / "disk.raw"
    with _lock:
        if disk.exists():
            return Guest(disk, float((folder / "build-seconds").read_text()), cached=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=".guest-", dir=folder.parent))
        try:
            _build(tmp, log)
            seconds = time.monotonic() - started
            (tmp / "build-seconds").write_text(f"{seconds:.1f}")
            try:
                os.rename(tmp, folder)
            except OSError:
                if not disk.exists():  # another process won the race: use its guest
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Guest(disk, float((folder / "build-seconds").read_text()), cached=False)


def _run(argv: list[str], log, **kwargs) -> None:
    log("guest: " + " ".join(argv[:3]) + " ...")
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}):\n{tail}")


def _build(tmp: Path, log) -> None:
    files = tmp / "files"
    files.mkdir()
    (files / "unit").write_text(UNIT)
    (files / "grub").write_text(GRUB_DEFAULT)
    (files / "fstab").write_text(FSTAB)
    (files / "modules").write_text("\n".join(INITRAMFS_MODULES) + "\n")
    tarball = tmp / "rootfs.tar"
    hooks = [
        f"copy-in {files / 'unit'} /etc/systemd/system/",
        f"upload {files / 'unit'} /etc/systemd/system/mtv-gitops-marker.service",
        f"upload {files / 'grub'} /etc/default/grub",
        f"upload {files / 'fstab'} /etc/fstab",
        f"upload {files / 'modules'} /etc/initramfs-tools/modules",
    ]
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        '--customize-hook=echo mtv-gitops-guest > "$1/etc/hostname"',
        "--customize-hook=echo 'root:guest' | chroot \"$1\" chpasswd",
        *[f"--customize-hook={h}" for h in hooks[1:]],
        "bookworm",
        str(tarball),
    ]
    _run(argv, log, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    raw = tmp / "disk.raw"
    env = guestfs_env()
    _run(
        [
            "virt-make-fs",
            "--partition=mbr",
            "--type=ext4",
            f"--size={SIZE}",
            "--format=raw",
            str(tarball),
            str(raw),
        ],
        log,
        env=env,
    )
    tarball.unlink()
    (files / "finish.sh").write_text(FINISH)
    _run(
        ["virt-customize", "-a", str(raw), "--run", str(files / "finish.sh")],
        log,
        env=env,
    )
    shutil.rmtree(files)


@dataclass(frozen=True)
class Boot:
    """How a boot check ended: the marker seen, or why not, and the console's last lines."""

    reached: bool
    seconds: float
    accel: str
    tail: str


def boot(disk: Path, console: Path, timeout: float = 600.0) -> Boot:
    """Boot ``disk`` (raw) with virtio-blk and virtio-net only, serial console to
    ``console``, until the guest prints :data:`MARKER` (True), initramfs says it found no
    root (False) or ``timeout`` passes (False).  The console is read as qemu writes it: the
    wait ends on what the guest prints, never on a sleep."""
    from reconciler.convert.kvm import qemu_accel

    accel = qemu_accel()
    argv = [
        "qemu-system-x86_64",
        "-machine",
        f"pc,accel={accel}",
        "-cpu",
        "host" if accel == "kvm" else "max",
        "-m",
        "768",
        "-smp",
        "1",
        "-nodefaults",
        "-display",
        "none",
        "-snapshot",
        "-drive",
        f"file={disk},format=raw,if=none,id=d0",
        "-device",
        "virtio-blk-pci,drive=d0",
        "-netdev",
        "user,id=n0",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-serial",
        f"file:{console}",
    ]
    console.write_text("")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reached = False
    try:
        with console.open("rb") as f:
            seen = b""
            while time.monotonic() - started < timeout:
                chunk = f.read()
                if chunk:
                    seen += chunk
                    text = seen.decode(errors="replace")
                    if MARKER in text:
                        reached = True
                        break
                    if NO_ROOT.search(text):
                        break
                    continue
                if proc.poll() is not None:
                    break
                # nothing new yet: wait for qemu to write, or to exit
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
    finally:
        proc.kill()
        proc.wait()
    text = console.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-15:])
    return Boot(reached, time.monotonic() - started, accel, tail)


def ensure_guest_ova(guest: Guest, name: str = "debian-vmware") -> Path:
    """The guest packaged as a VMware-style OVA (its disk on SCSI, a VMXNET3 NIC), built
    once beside the cached guest."""
    from plugins.ova.factory import DiskSpec, NicSpec, build_ova

    ova = guest.disk.parent / f"{name}.ova"
    if ova.exists():
        return ova
    size = guest.disk.stat().st_size

    def fill(f) -> None:
        copy_sparse(guest.disk, f)

    tmp = guest.disk.parent / f".{name}.{os.getpid()}.ova"
    try:
        build_ova(
            tmp,
            name,
            cpus=1,
            memory_mb=1024,
            os_type="debian11_64Guest",
            disks=[DiskSpec(size, generator=fill, bus="scsi")],
            nics=[NicSpec("VM Network", "00:50:56:01:17:01", "VmxNet3")],
        )
        os.replace(tmp, ova)
    finally:
        tmp.unlink(missing_ok=True)
    return ova


def copy_sparse(src: Path, dst) -> None:
    """Copy the data areas of ``src`` into the open file ``dst`` (holes stay holes)."""
    fd = os.open(src, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        pos = 0
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            os.lseek(fd, data, os.SEEK_SET)
            dst.seek(data)
            left = hole - data
            while left:
                chunk = os.read(fd, min(left, 8 << 20))
                dst.write(chunk)
                left -= len(chunk)
            pos = hole
    finally:
        os.close(fd)


def _root_fs(disk: Path) -> str:
    """debugfs's name for the ext4 filesystem of the image's first partition."""
    with disk.open("rb") as f:
        mbr = f.read(512)
    offset = int.from_bytes(mbr[446 + 8 : 446 + 12], "little") * 512
    return f"{disk}?offset={offset}"


def file_in_guest(disk: Path, path: str) -> bool:
    """Whether ``path`` exists in the ext4 root filesystem of the guest's first partition,
    read with debugfs on the raw image (no appliance to boot)."""
    proc = subprocess.run(
        ["debugfs", "-R", f"stat {path}", _root_fs(disk)], capture_output=True, text=True
    )
    out = proc.stdout + proc.stderr
    if "File not found" in out:
        return False
    if "Inode:" in out:
        return True
    raise RuntimeError(f"debugfs could not read {disk}: {out.strip()}")


def write_in_guest(disk: Path, path: str, content: bytes, work: Path) -> None:
    """What the running guest does between precopy rounds: a new file in its root filesystem,
    written with debugfs into the (powered-off) image, so the filesystem stays consistent."""
    src = work / "guest-write.src"
    src.write_bytes(content)
    proc = subprocess.run(
        ["debugfs", "-w", "-R", f"write {src} {path}", _root_fs(disk)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or "rror" in proc.stderr:
        raise RuntimeError(f"debugfs could not write {path} into {disk}: {proc.stderr.strip()}")


def changed_runs(before: Path, after: Path, block: int = 4096) -> list[tuple[int, bytes]]:
    """The runs of ``block``-sized blocks that differ between two images of one size, as
    (offset, new bytes): what a guest's writes look like to changed block tracking."""
    runs: list[tuple[int, bytes]] = []
    piece = 1 << 20
    with before.open("rb") as a, after.open("rb") as b:
        pos = 0
        while True:
            x, y = a.read(piece), b.read(piece)
            if not y:
                return runs
            if x != y:
                for at in range(0, len(y), block):
                    if x[at : at + block] == y[at : at + block]:
                        continue
                    off = pos + at
                    if runs and runs[-1][0] + len(runs[-1][1]) == off:
                        runs[-1] = (runs[-1][0], runs[-1][1] + y[at : at + block])
                    else:
                        runs.append((off, y[at : at + block]))
            pos += len(y)


VM = "debian-vmware"  # the guest's name in its OVA and the plan


def guest_workspace(root: Path, ova: Path, plan_extra: str = "") -> Workspace:
    """A GitOps workspace whose OVA folder holds ``ova`` (linked, not copied)."""
    ws = Workspace(
        root, root / "ova", root / "remote.git", root / "repo", root / "state", root / "cluster"
    )
    ws.ova.mkdir(parents=True)
    os.symlink(ova, ws.ova / ova.name)
    seed = root / "seed"
    write_repo(seed, ws.ova, [VM])
    if plan_extra:
        plan = seed / "plans" / "demo-plan.yaml"
        plan.write_text(plan.read_text().replace("spec:\n", "spec:\n" + plan_extra, 1))
    repo = git.Repo.init(seed, initial_branch="main")
    with repo.git.custom_environment(**USER_ENV):
        repo.git.add(A=True)
        repo.git.commit(m="plan: migrate a real guest")
    git.Repo.clone_from(str(seed), str(ws.remote), bare=True)
    shutil.rmtree(seed)
    git.Repo.clone_from(str(ws.remote), str(ws.clone))
    return ws
