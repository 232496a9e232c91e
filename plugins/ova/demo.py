"""The source of ``mtv-gitops demo``: three VMs exported as OVA files.

``DIR/ova`` gets generated .ova files (real streamOptimized VMDKs of known content); the demo
repo is ``examples/repo`` with its OVA Provider pointed at that folder.  The core seeds the git
remote from it, runs the reconciler and checks each target disk against the digests here.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ruamel.yaml import YAML

from plugins import bundled
from plugins.ova.factory import DiskSpec, NicSpec, OvaInfo, build_ova, scattered
from plugins.ova.plugin import PROVIDER_TYPE

MIB, GIB = 1024**2, 1024**3


def demo_vms() -> list[dict]:
    """The three VMs of the demo: ~3 GiB of virtual disk holding ~300 MiB of data."""
    return [
        dict(
            name="Web_Server 01",
            cpus=2,
            memory_mb=2048,
            firmware="bios",
            os_type="rhel8_64Guest",
            disks=[DiskSpec(512 * MIB, scattered(512 * MIB, 60 * MIB, 6, 1))],
            nics=[NicSpec("VM Network", "00:50:56:8a:10:01")],
        ),
        dict(
            name="db-two-disks",
            cpus=4,
            cores_per_socket=2,
            memory_mb=4096,
            firmware="efi",
            os_type="rhel9_64Guest",
            disks=[
                DiskSpec(256 * MIB, scattered(256 * MIB, 40 * MIB, 4, 2)),
                DiskSpec(256 * MIB, scattered(256 * MIB, 40 * MIB, 4, 3)),
            ],
            nics=[
                NicSpec("VM Network", "00:50:56:8a:20:01"),
                NicSpec("backend", "00:50:56:8a:20:02"),
            ],
        ),
        dict(
            name="analytics-big",
            cpus=2,
            memory_mb=8192,
            firmware="bios",
            os_type="ubuntu64Guest",
            disks=[DiskSpec(2 * GIB, scattered(2 * GIB, 160 * MIB, 16, 4))],
            nics=[NicSpec("VM Network", "00:50:56:8a:30:01")],
        ),
    ]


def example_repo() -> Path:
    """``examples/repo``: in a checkout, else the copy an installed wheel ships."""
    return bundled("examples", "repo")


def build_ovas(folder: Path) -> list[OvaInfo]:
    folder.mkdir(parents=True, exist_ok=True)
    specs = demo_vms()
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        jobs = [
            pool.submit(build_ova, folder / f"{s['name'].replace(' ', '_')}.ova", **s)
            for s in specs
        ]
        return [j.result() for j in jobs]


class OvaDemo:
    """A folder of OVA files as a :class:`reconciler.sources.DemoSource`."""

    title = "Plan: migrate three VMs from OVA files"
    plan = "openshift-mtv/demo-plan"
    target_namespace = "demo-vms"

    def __init__(self, workspace: Path) -> None:
        self.folder = workspace / "ova"
        self.ovas: list[OvaInfo] = []

    def start(self, log: Callable[[str], None]) -> None:
        t0 = time.monotonic()
        self.ovas = build_ovas(self.folder)
        virtual = sum(d.capacity for o in self.ovas for d in o.disks)
        log(
            f"built {len(self.ovas)} OVA files ({virtual / GIB:.1f} GiB of virtual disk) in "
            f"{time.monotonic() - t0:.1f}s -> {self.folder}"
        )

    def seed(self, folder: Path) -> dict[str, dict[str, str]]:
        """examples/repo, its OVA Provider pointed at the folder of OVA files; no Secrets."""
        shutil.copytree(example_repo(), folder)
        providers = folder / "providers" / "providers.yaml"
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        docs = list(yaml.load_all(providers.read_text()))
        for doc in docs:
            if doc["spec"]["type"] == PROVIDER_TYPE:
                doc["spec"]["url"] = str(self.folder)
        with providers.open("w") as f:
            yaml.dump_all(docs, f)
        return {}

    def disks(self) -> dict[str, list[str]]:
        return {o.name: [d.digest for d in o.disks] for o in self.ovas}

    def stop(self) -> None:
        pass
