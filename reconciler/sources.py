"""What the core asks of a source provider once a plugin has connected to it."""

from __future__ import annotations

import hashlib
import socket
import ssl
from typing import Any, Protocol

from reconciler.inventory.model import Inventory
from reconciler.transfer.extents import DiskReader, Extent


def sha1_fingerprint(host: str, port: int = 443, timeout: float = 10.0) -> str:
    """A server certificate's SHA-1 in the MTV docs' format (``AA:BB:...``), read without
    trusting it: what ``openssl s_client | openssl x509 -fingerprint -sha1`` prints, for
    plugins that pin certificates (a vSphere Secret's ``thumbprint``)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise SourceError(f"cannot reach {host}:{port}: {exc}") from exc
    if not der:
        raise SourceError(f"{host}:{port} sent no certificate")
    digest = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the format MTV uses
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


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


# the name of every snapshot mtv-gitops takes starts so (a warm migration's); a source does not
# count them as the user's (validation would warn of the snapshots a warm migration is taking)
OWN_SNAPSHOT_PREFIX = "mtv-gitops-"


class WarmSource(SourceConnection, Protocol):
    """A source that can take a running VM's disks in rounds: snapshots and the areas
    changed between them (vSphere changed block tracking)."""

    def open_disk(self, vm_id: str, disk_key: str, snapshot_id: str = "") -> DiskReader:
        """A reader for one disk, as the snapshot ``snapshot_id`` holds it when given."""

    def create_snapshot(self, vm_id: str, name: str, description: str = "") -> str:
        """Take a snapshot (no memory, no quiescing); returns its id."""

    def remove_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """Remove one snapshot, consolidating it; an absent one is fine."""

    def snapshots(self, vm_id: str) -> dict[str, str]:
        """The VM's snapshots now, id to name (to find those a killed pass left behind)."""

    def disk_change_tracking(self, vm_id: str) -> dict[str, bool]:
        """Each disk's changed block tracking (disk key to on), read now; optional: a
        source without it is checked at the initial snapshot instead."""

    def change_ids(self, vm_id: str, snapshot_id: str) -> dict[str, str]:
        """Each disk's change id at the snapshot ("" where tracking is off)."""

    def changed_extents(
        self, vm_id: str, snapshot_id: str, disk_key: str, change_id: str
    ) -> list[Extent]:
        """The disk areas written between ``change_id`` and the snapshot."""


def warm_source(source: SourceConnection) -> WarmSource:
    """The connection as a :class:`WarmSource`, or a SourceError saying it cannot be one."""
    needed = ("create_snapshot", "remove_snapshot", "snapshots", "change_ids", "changed_extents")
    if not all(callable(getattr(source, name, None)) for name in needed):
        raise SourceError("this source provider has no snapshots or changed block tracking")
    return source  # type: ignore[return-value]
