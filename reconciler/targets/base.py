"""The one interface the pipeline drives, whatever target is behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.transfer.extents import DiskReader, DiskWriter


class TargetError(Exception):
    """The target refused or cannot hold what the migration needs; the message says why."""


@dataclass(frozen=True)
class DiskClaim:
    """One PVC to create and fill: its manifest and the logical size of the disk."""

    name: str
    namespace: str
    size: int
    manifest: dict[str, Any]


class Target(Protocol):
    """What a destination cluster must offer. Every ``ensure_*`` may run twice."""

    def describe(self) -> str:
        """One line for humans: where this target is."""

    def vm_names(self, namespace: str) -> set[str]:
        """Names of VirtualMachines that exist in the namespace."""

    def free_bytes(self, namespace: str) -> int | None:
        """Bytes that can still be written, or None when the target cannot tell."""

    def ensure_namespace(self, namespace: str, labels: dict[str, str]) -> None: ...

    def ensure_disk(self, claim: DiskClaim) -> None:
        """Create the PVC (and its backing storage) if it does not exist yet."""

    def disk_exists(self, claim: DiskClaim) -> bool: ...

    def open_writer(self, claim: DiskClaim) -> DiskWriter: ...

    def open_reader(self, claim: DiskClaim) -> DiskReader:
        """Read the disk back, to verify the copy."""

    def delete_disk(self, claim: DiskClaim) -> None:
        """Remove the PVC and its data (a canceled VM); absent is fine."""

    def delete_vm(self, namespace: str, name: str) -> None:
        """Remove the VirtualMachine; absent is fine."""

    def ensure_vm(self, manifest: dict[str, Any]) -> None:
        """Create or update the VirtualMachine."""

    def get_vm(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def locate(self, namespace: str, name: str) -> dict[str, str]:
        """Where a VM's pieces are, for people (paths or API URLs)."""
