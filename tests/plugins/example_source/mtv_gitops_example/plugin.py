"""The ``example`` source: a folder with ``vms.json`` and one raw image per disk.

``vms.json`` is ``{"vms": [{"id", "name", "tags": [...], "disks": ["a.img", ...]}]}``; every
VM has one NIC on the network ``example-net`` and its disks on the storage ``example-store``.
Only the plugin-facing core is used (hookspecs, sources, inventory records, transfer readers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.hookspecs import hookimpl
from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.sources import Capabilities, Rules, SourceError
from reconciler.transfer.rawfile import RawDiskReader

TYPE = "example"
NETWORK = Network("example-net", "example-net")
STORAGE = Storage("example-store", "example-store")


class ExampleConnection:
    """The folder as a :class:`reconciler.sources.SourceConnection`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.power: dict[str, str] = {}

    def _vms(self) -> list[dict[str, Any]]:
        try:
            return json.loads((self.folder / "vms.json").read_text())["vms"]
        except (OSError, ValueError, KeyError) as exc:
            raise SourceError(f"{self.folder}/vms.json: {exc}") from exc

    def _vm(self, vm_id: str) -> dict[str, Any]:
        for vm in self._vms():
            if vm["id"] == vm_id:
                return vm
        raise SourceError(f"no VM {vm_id} in {self.folder}")

    def inventory(self) -> Inventory:
        vms = [
            VM(
                id=v["id"],
                name=v["name"],
                power_state=self.power.get(v["id"], "Off"),
                disks=tuple(
                    Disk(f"disk-{i}", (self.folder / f).stat().st_size, STORAGE.id, f)
                    for i, f in enumerate(v["disks"])
                ),
                nics=(Nic("nic-0", NETWORK.id, v.get("mac", "")),),
            )
            for v in self._vms()
        ]
        return Inventory(vms=vms, networks=[NETWORK], storages=[STORAGE])

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        vm = self._vm(vm_id)
        return {"id": vm["id"], "name": vm["name"], "tags": list(vm.get("tags", []))}

    def power_state(self, vm_id: str) -> str:
        return self.power.get(vm_id, "Off")

    def power_off(self, vm_id: str, timeout: float) -> None:
        self.power[vm_id] = "Off"

    def power_on(self, vm_id: str) -> None:
        self.power[vm_id] = "On"

    def open_disk(self, vm_id: str, disk_key: str) -> RawDiskReader:
        files = self._vm(vm_id)["disks"]
        index = int(disk_key.removeprefix("disk-"))
        return RawDiskReader(self.folder / files[index])

    def close(self) -> None:
        pass


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    return [TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Its own Rego package, with the rules inside this Python package."""
    if provider_type != TYPE:
        return None
    return Rules("io.example.mtv_gitops.source", Path(__file__).parent / "rules")


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    return Capabilities() if provider_type == TYPE else None


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    return ["exampleToken"] if provider_type == TYPE else None


@hookimpl
def mtv_gitops_connect(provider_type: str, url: str) -> ExampleConnection | None:
    if provider_type != TYPE:
        return None
    folder = Path(url)
    if not folder.is_dir():
        raise SourceError(f"example provider url {url!r} is not a folder")
    return ExampleConnection(folder)
