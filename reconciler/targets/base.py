"""The one interface the pipeline drives, whatever target is behind it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.convert.domain import GuestSpec
from reconciler.convert.v2v import Conversion
from reconciler.hooks.model import HookOutcome, HookRun
from reconciler.progress.store import ProgressStore
from reconciler.transfer.engine import CopyProgress, CopyResult, StreamBudget
from reconciler.transfer.extents import DiskReader, Extent
from reconciler.transfer.request import DiskCopy


class TargetError(Exception):
    """The target refused or cannot hold what the migration needs; the message says why."""


class DiskLost(TargetError):
    """A disk's PVC vanished (deleted by hand) while its copy ran: re-create it and copy again."""


@dataclass(frozen=True)
class DiskClaim:
    """One PVC to create and fill: its manifest and the logical size of the disk."""

    name: str
    namespace: str
    size: int
    manifest: dict[str, Any]


@dataclass(frozen=True)
class HostRef:
    """A source host reached over its own migration network (a vSphere Host manifest): the
    address disk reads go to, and the host's own credentials (never shown)."""

    id: str
    address: str
    secret_ref: tuple[str, str] | None = None
    secret: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class SourceRef:
    """The source Provider as a process elsewhere (a transfer Job) needs it to connect on its
    own. ``secret`` holds the resolved values; it is never shown (``repr=False``)."""

    namespace: str
    name: str
    type: str
    url: str
    settings: dict[str, str] = field(default_factory=dict)
    secret_ref: tuple[str, str] | None = None  # (namespace, name) of the Provider's spec.secret
    secret: dict[str, str] = field(default_factory=dict, repr=False)
    hosts: tuple[HostRef, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class CopyRequest:
    """Everything a target needs to fill one PVC from one source disk.

    ``copy`` says what to copy and how, for every target alike (a kubevirt transfer Job gets
    it as its arguments). A target copies in-process (``open_source``, the pass's live
    connection; a round's ``changed`` areas) or elsewhere (``source``, for a process that
    connects by itself and asks for the changed areas itself); the pipeline gives both and
    does not know which one is used.
    """

    claim: DiskClaim
    copy: DiskCopy
    disk_id: str  # the key of this copy in ``store``
    labels: dict[str, str]  # plan, migration and VM ids: every object made for the copy has them
    source: SourceRef | None
    open_source: Callable[[], DiskReader]
    store: ProgressStore
    on_progress: Callable[[CopyProgress], None]
    halt: threading.Event  # set: stop at a durable point; the next run resumes
    changed: tuple[Extent, ...] = ()  # a warm round's areas, for a copy made in process
    budget: StreamBudget | None = None  # streams shared with the VM's other disks (in process)


@dataclass(frozen=True)
class CopyOutcome:
    """A finished copy: the engine's result and, for people, how many attempts it took."""

    result: CopyResult
    attempts: int = 1


@dataclass
class Gathered:
    """What a target holds of a VM, for a support bundle: manifests and pod logs."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)  # pod name -> its log


@dataclass(frozen=True)
class ConvertRequest:
    """Convert one VM's guest on its copied disks (virt-v2v).  ``guest`` describes it as the
    source had it; its disks, in ``claims``' order, carry the source bus but no path: the
    target knows where each claim's data is."""

    claims: tuple[DiskClaim, ...]
    guest: GuestSpec
    labels: dict[str, str]  # plan, migration and VM ids, for whatever the target makes to run it
    on_progress: Callable[[str], None]  # virt-v2v's progress lines, as they come
    halt: threading.Event


@dataclass(frozen=True)
class ConvertOutcome:
    """What conversion did: its findings, or why there was nothing to convert."""

    conversion: Conversion | None
    skipped: str = ""  # why nothing ran (no disk holds an operating system)
    log: str = ""  # where the conversion's whole log is, for people


class ConvertingTarget(Protocol):
    """A target that can convert guests on their copied disks (``ConvertGuest``)."""

    def convert_guest(self, request: ConvertRequest) -> ConvertOutcome:
        """Run virt-v2v in place over the claims' data; raises ConversionFailed with
        virt-v2v's message and its last log lines, leaving the disks for inspection."""


class Target(Protocol):
    """What a destination cluster must offer. Every ``ensure_*`` may run twice."""

    def describe(self) -> str:
        """One line for humans: where this target is."""

    def vm_names(self, namespace: str) -> set[str]:
        """Names of VirtualMachines that exist in the namespace."""

    def free_bytes(self, namespace: str) -> int | None:
        """Bytes that can still be written, or None when the target cannot tell."""

    def storage_classes(self) -> tuple[dict[str, str], str]:
        """``({storage class: provisioner}, default class)``; empty when the target has none."""

    def ensure_namespace(self, namespace: str, labels: dict[str, str]) -> None: ...

    def ensure_disk(self, claim: DiskClaim) -> None:
        """Create the PVC (and its backing storage) if it does not exist yet."""

    def disk_exists(self, claim: DiskClaim) -> bool: ...

    def disk_usage(self, claim: DiskClaim) -> int | None:
        """Bytes the disk holds on the target's storage now (a partial image kept for resume
        counts what it occupies), or None when it does not exist."""

    def copy_disk(self, request: CopyRequest) -> CopyOutcome:
        """Fill the claim from the source disk, resuming what an earlier run made durable.

        Raises TransferCanceled when ``request.halt`` is set, DigestMismatch when the copy
        does not read back, DiskLost when the PVC vanished, TargetError or TransferError with
        what to do otherwise."""

    def delete_disk(self, claim: DiskClaim) -> None:
        """Remove the PVC and its data (a canceled VM); absent is fine."""

    def release_disk(self, claim: DiskClaim) -> None:
        """The disk's copy is over for good (its VM is created): drop what was kept beside it
        to resume or continue it (a warm disk's checkpoints); absent is fine."""

    def delete_vm(self, namespace: str, name: str) -> None:
        """Remove the VirtualMachine; absent is fine."""

    def cleanup(self, namespace: str, labels: dict[str, str]) -> int:
        """Remove everything in the namespace that carries all ``labels``; returns how many."""

    def cleanup_temporaries(self, namespace: str, labels: dict[str, str]) -> int:
        """Remove what copies and hooks left beside a VM that carries all ``labels`` (Jobs,
        their Secrets and ConfigMaps, checkpoint PVCs), never its disks or VirtualMachine;
        returns how many."""

    def ensure_vm(self, manifest: dict[str, Any]) -> None:
        """Create or update the VirtualMachine."""

    def get_vm(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def locate(self, namespace: str, name: str) -> dict[str, str]:
        """Where a VM's pieces are, for people (paths or API URLs)."""

    def gather(self, namespace: str, labels: dict[str, str], since: float | None) -> Gathered:
        """For ``mtv-gitops gather``: the objects of the namespace that carry all ``labels``
        (PVCs, Jobs, VirtualMachines, pods) and the logs of those pods (the last *since*
        seconds, None: all). Secrets are never read."""

    def run_hook(self, run: HookRun) -> HookOutcome:
        """Run a PreHook or PostHook with its inputs and wait for its end (its deadline ends
        it sooner; ``run.halt`` stops following it). A run this Migration already started for
        the VM and step (a killed pass's) is followed, not started twice, where the target
        keeps it (a Job); a failed hook is an outcome, not an exception."""
