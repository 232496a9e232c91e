"""What the core asks of a source provider once a plugin has connected to it."""

from __future__ import annotations

from typing import Any, Protocol

from reconciler.inventory.model import Inventory
from reconciler.transfer.extents import DiskReader


class SourceError(Exception):
    """A provider failed in a way the user must see (unreachable, refused, corrupt data)."""


class SourceConnection(Protocol):
    """A live connection to one provider; the pipeline drives it phase by phase."""

    def inventory(self) -> Inventory:
        """Everything the provider has: VMs, networks, storage (datastores), hosts."""

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        """The Forklift-shaped inventory document of one VM, the input of the Rego rules."""

    def power_state(self, vm_id: str) -> str:
        """``On``, ``Off`` or ``Unknown``."""

    def power_off(self, vm_id: str, timeout: float) -> None:
        """Stop the VM (guest shutdown when possible) and return once it is off."""

    def power_on(self, vm_id: str) -> None:
        """Start the VM again (used when a migration is canceled)."""

    def open_disk(self, vm_id: str, disk_key: str) -> DiskReader:
        """A reader for one disk's logical content; the caller closes it."""

    def close(self) -> None:
        """Release sessions, sockets and helper processes."""
