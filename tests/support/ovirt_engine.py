"""The oVirt peers for tests (they live in ``testpeers.ovirt``, where the benchmark finds
them too) and the world the oVirt tests share: a started peer with two VMs and each disk's
guest-visible bytes read by qemu-img."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testpeers.ovirt.engine import (
    API,
    PASSWORD,
    USER,
    OvirtPeer,
    TestEngine,
    _id,
    _link,
    logical,
    qcow2_with_holes,
    raw_image,
    start_peer,
)
from testpeers.ovirt.imageio import ImageioDaemon, NbdExport, imageio_venv
from testpeers.pki import Pki, make_pki

__all__ = [
    "API",
    "PASSWORD",
    "USER",
    "ImageioDaemon",
    "NbdExport",
    "OvirtPeer",
    "Pki",
    "TestEngine",
    "World",
    "_id",
    "_link",
    "imageio_venv",
    "logical",
    "make_pki",
    "make_world",
    "pattern",
    "qcow2_with_holes",
    "raw_image",
    "start_peer",
]

MiB = 1024 * 1024


@dataclass
class World:
    """The peer and the VMs made on it: ``web`` (two disks: qcow2 with holes, raw; up),
    ``db`` (one disk, down), with each disk's guest-visible bytes read by qemu-img."""

    peer: OvirtPeer
    web: str
    db: str
    reference: dict[str, bytes]  # disk id -> bytes

    @property
    def engine(self) -> TestEngine:
        return self.peer.engine


def pattern(n: int, seed: int) -> bytes:
    block = bytes((i * 7 + seed) % 251 for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


def make_world(folder: Path) -> World:
    peer = start_peer(folder)
    images = folder / "images"
    images.mkdir()
    boot = qcow2_with_holes(
        images / "web-boot.qcow2",
        24 * MiB,
        [(0, pattern(MiB, 1)), (9 * MiB + 512, pattern(70_000, 2)), (20 * MiB, pattern(MiB, 3))],
    )
    data = raw_image(images / "web-data.raw", 8 * MiB, [(3 * MiB, pattern(2 * MiB, 4))])
    db = qcow2_with_holes(images / "db.qcow2", 12 * MiB, [(4 * MiB, pattern(4096, 5))])
    e = peer.engine
    web_id = e.add_vm(
        "web",
        [(boot, "qcow2", "data1", "virtio_scsi"), (data, "raw", "data2", "virtio")],
        [("nic1", "56:6f:1a:00:00:01", "ovirtmgmt"), ("nic2", "56:6f:1a:00:00:02", "vlan10")],
        status="up",
    )
    db_id = e.add_vm(
        "db",
        [(db, "qcow2", "data1", "virtio")],
        [("nic1", "56:6f:1a:00:00:03", "vlan10-qos")],
        bios="i440fx_sea_bios",
    )
    reference = {}
    for entry in e.vms.values():
        for a in entry.attachments:
            d = e.disks[a.disk.id]
            reference[a.disk.id] = logical(d.image, d.fmt, folder / f"{a.disk.id}.ref")
    return World(peer, web_id, db_id, reference)
