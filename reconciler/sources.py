"""What the core asks of a source provider once a plugin has connected to it."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler.inventory.model import Inventory
from reconciler.transfer.extents import DiskReader, Extent


def sha1_fingerprint(host: str, port: int = 443, timeout: float = 10.0) -> str:
    """A server certificate's SHA-1 in the MTV docs' format (``AA:BB:...``), read without
    trusting it: what ``openssl s_client | openssl x509 -fingerprint -sha1`` prints, for
    plugins that pin certificates (a vSphere Secret's ``thumbprint``)."""
    import socket  # here: a transfer Job's process imports this module, never calls this
    import ssl

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


@dataclass(frozen=True)
class Rules:
    """Where a provider type's validation rules live (the answer of ``mtv_gitops_rules``)."""

    package: str  # the Rego package, e.g. "io.konveyor.forklift.<name>" as in Forklift
    folder: Path  # the default rules: validate.rego, rules_version.rego, *_cases.yaml ...


@dataclass(frozen=True)
class Capabilities:
    """What a source can do (the answer of ``mtv_gitops_capabilities``); the planner gets a
    mapping provider type -> Capabilities as data, gathered where plugins are loaded."""

    # snapshots and changed block tracking: a running VM's disks copied in rounds
    warm: bool = False
    # controller_max_vm_inflight counts the VMs of one source host (they share its disk
    # connections), not of the plan
    inflight_per_host: bool = False
    # the guest needs its drivers converted (virt-v2v) before it boots on KubeVirt
    guest_conversion: bool = False


@dataclass(frozen=True)
class Requirements:
    """The optional packages a source needs (the answer of ``mtv_gitops_requirements``)."""

    extra: str  # pip install 'mtv-gitops[<extra>]'
    modules: tuple[str, ...] = ()  # top-level modules that extra provides

    def missing(self) -> list[str]:
        """The modules not installed (found without importing them)."""
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def problem(self, provider_type: str) -> str:
        """Why the source cannot run here, "" when it can."""
        gone = self.missing()
        if not gone:
            return ""
        return (
            f"the {provider_type} source needs {', '.join(gone)}, which is not installed: "
            f"pip install 'mtv-gitops[{self.extra}]'"
        )


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


def prepare_disks(source: SourceConnection, vm_id: str) -> None:
    """Let the source make, in the reconciler, what the VM's disks are read through (an
    OpenStack source's temporary snapshots, volumes and images) before they are read, here or
    by a transfer Job elsewhere; optional: a source without ``prepare`` reads its disks as they
    are. Called once the VM is off, before its disks are measured and copied; must be
    idempotent (a killed pass's are found again); ``release`` deletes what it made."""
    prepare = getattr(source, "prepare", None)
    if callable(prepare):
        prepare(vm_id)


def release_disks(source: SourceConnection, vm_id: str) -> None:
    """Let the source delete what it made to read the VM's disks (an OpenStack source's
    temporary snapshots, volumes and images); optional: a source without ``release`` made
    nothing. Called when the VM's disks are copied and when the VM ends failed or canceled;
    must be idempotent."""
    release = getattr(source, "release", None)
    if callable(release):
        release(vm_id)


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


class DemoSource(Protocol):
    """A source provider a demo migrates from, made up by its plugin (``mtv_gitops_demo``).

    The core does the rest, as for any repo: a git remote seeded with :meth:`seed`'s files,
    reconciler passes, and a check of the target's disks against :meth:`disks`.
    """

    title: str  # the seed commit's subject: "Plan: migrate three VMs from ..."
    plan: str  # "namespace/name" of the Plan the seed holds
    target_namespace: str  # where the Plan puts the VMs

    def start(self, log: Callable[[str], None]) -> None:
        """Make the source (files, a simulator ...); ``log`` says what is ready."""

    def seed(self, folder: Path) -> dict[str, dict[str, str]]:
        """Write the demo repo (Providers, maps, Plan, Migration) into ``folder``; return the
        Secrets it names, ``"namespace/name"`` to keys, which the demo keeps out of git."""

    def disks(self) -> dict[str, list[str]]:
        """Source VM name -> each disk's content digest now (:mod:`reconciler.transfer.digest`),
        in the order of the VM's disks."""

    def stop(self) -> None:
        """Stop what :meth:`start` started."""


class WarmDemoSource(DemoSource, Protocol):
    """A demo source whose VM runs during the migration: its guest writes between rounds."""

    migration: str  # "namespace/name" of the Migration the seed holds

    def guest_write(self, step: int) -> str:
        """The running guest writes (steps 1, 2: before each precopy round; 3: after the
        last one, copied as the final delta); returns what it wrote, for the reader."""

    def written_bytes(self, step: int) -> int:
        """How many bytes the guest writes at ``step`` (the cutover's yardstick)."""

    def snapshots(self) -> int:
        """How many snapshots the source VM has now (a finished migration leaves none)."""

    def power_state(self) -> str:
        """``On`` or ``Off``: the source VM is off after the cutover."""
