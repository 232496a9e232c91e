"""The step runner both itineraries use: walk a VM's ``ensure_*`` steps, record each phase.

The VM's record in the progress store is updated after each step, so a killed reconciler
resumes at the step it was in.  Every transition is also told as an :class:`Event` on the
context's bus (a step starts or ends, the VM pauses or ends); the runner never writes status,
draws progress or counts metrics itself: those subscribe to the bus.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from reconciler.hooks.model import Hook
from reconciler.pipeline.phases import (
    COMPLETED,
    FAILED,
    NOT_BUILT,
    PENDING,
    RUNNING,
    SKIPPED,
    itinerary,
    now,
)
from reconciler.planner.model import VmPlan
from reconciler.progress.events import DiskProgress, Event, EventBus, Kind
from reconciler.progress.store import ProgressStore, VmProgress
from reconciler.sources import SourceConnection
from reconciler.targets.base import DiskClaim, SourceRef, Target, TargetError
from reconciler.targets.kubevirt.manifests import StorageSettings, disk_claims
from reconciler.transfer.engine import TransferCanceled

PAUSED, CANCELED = "Paused", "Canceled"


@dataclass
class RunContext:
    """What a VM's pipeline needs from the pass that runs it."""

    store: ProgressStore
    source: SourceConnection
    target: Target
    plan_key: str
    migration: str
    streams: int = 4
    chunk_size: int = 4 * 1024 * 1024
    verify: bool = True
    max_bytes_per_second: float | None = None
    parallel_disks: int = 1  # a VM's disks copied at once (.mtv-gitops.yaml transfer.parallelDisks)
    # where the VM's steps and copies tell what happens (status, progress bars, metrics)
    events: EventBus = field(default_factory=EventBus)
    cancel: threading.Event = field(default_factory=threading.Event)  # set on shutdown
    # this VM's own: set to stop it at a durable point (its copy included) on shutdown, when
    # the user cancels it, or when the pass fails; VMs that run at once never share one
    halt: threading.Event = field(default_factory=threading.Event)
    canceled: Callable[[], bool] = lambda: False  # the user canceled this VM (spec.cancel)
    # the source Provider for copies that run outside this process (a transfer Job)
    source_ref: SourceRef | None = None
    storage: StorageSettings | None = None  # how PVCs are sized and moded on this target
    # warm migration: the plan's spec.warm, seconds between precopy rounds, the Migration's
    # spec.cutover, and how to propose a cutover (pushes the branch; returns the branch and
    # the sentence for status)
    warm: bool = False
    precopy_interval: float = 3600.0
    cutover: datetime | None = None
    propose: Callable[[datetime], tuple[str, str]] | None = None
    # why ConvertGuest is skipped for this plan ("" when its guests are converted)
    skip_conversion: str = ""
    # hooks: the plan's Hooks by "namespace/name" and its plan.yml (reconciler.hooks.inputs)
    hooks: dict[str, Hook] = field(default_factory=dict)
    plan_yml: str = ""


class Paused(Exception):
    """A step has nothing more to do in this pass (a warm VM between precopy rounds): the VM
    waits in ``phase`` with the step still running, and the next pass continues it."""

    def __init__(self, phase: str) -> None:
        super().__init__(phase)
        self.phase = phase


Handler = Callable[[RunContext, VmPlan, VmProgress, dict], str]
Cleanup = Callable[[RunContext, VmPlan, VmProgress], None]


def emit(
    ctx: RunContext,
    vm: VmPlan,
    kind: Kind,
    phase: str,
    outcome: str = "",
    message: str = "",
    *,
    disk: str = "",
    progress: DiskProgress | None = None,
) -> None:
    """Tell the context's subscribers what happened to *vm*."""
    ctx.events.emit(
        Event(
            kind,
            ctx.plan_key,
            vm.vm_id,
            vm.source_name,
            vm.namespace,
            vm.target_name,
            phase,
            outcome,
            message,
            disk,
            progress,
        )
    )


def labelled(ctx: RunContext, vm: VmPlan) -> VmPlan:
    """The VM with the Migration among its labels, so everything made for this run of it on
    the target (PVCs, Jobs, the VirtualMachine) can be found and cleaned up by label."""
    value = ctx.migration[:63].rstrip("-_.") or "migration"
    return replace(vm, labels={**vm.labels, "migration": value})


def claims_of(ctx: RunContext, vm: VmPlan) -> list[DiskClaim]:
    return disk_claims(vm, ctx.storage)


def disk_id(ctx: RunContext, vm: VmPlan, claim: DiskClaim) -> str:
    return f"{ctx.plan_key}/{vm.vm_id}/{claim.namespace}/{claim.name}"


def start_record(ctx: RunContext, vm: VmPlan, prior: VmProgress | None) -> VmProgress:
    """The record this run continues: the unfinished one, or a fresh pipeline."""
    if prior and not prior.finished and prior.migration == ctx.migration and prior.steps:
        return prior
    hooks = {step for step, _ in vm.hooks}
    rec = VmProgress(
        plan=ctx.plan_key,
        vm_id=vm.vm_id,
        vm_name=vm.source_name,
        migration=ctx.migration,
        target_name=vm.target_name,
        phase=PENDING,
        steps=itinerary(hooks, warm=ctx.warm),
        warm={"precopies": []} if ctx.warm else None,
    )
    ctx.store.put_vm(rec)
    return rec


def mark_started(ctx: RunContext, rec: VmProgress) -> None:
    """The VM has its slot: record when it started and that it is no longer Pending, before
    the pass stops saying why it waited, so status never shows it queued without a reason."""
    if not rec.started:
        rec.started = now()
    rec.phase = RUNNING if rec.phase == PENDING else rec.phase
    ctx.store.put_vm(rec)


def run_steps(
    ctx: RunContext,
    vm: VmPlan,
    rec: VmProgress,
    handlers: dict[str, Handler],
    cleanup: Cleanup | None = None,
) -> VmProgress:
    """Walk the record's remaining steps with ``handlers``; ``cleanup`` runs before the VM
    ends failed or canceled (a warm VM's snapshots).  A step raising :class:`Paused` leaves
    the VM waiting for a later pass.  A failure ends the VM with the step's error, never a
    crash."""
    mark_started(ctx, rec)
    vm = labelled(ctx, vm)
    for step in rec.steps:
        if step["phase"] in (COMPLETED, SKIPPED):
            continue
        if ctx.canceled():
            run_cleanup(ctx, vm, rec, cleanup)
            return cancel_vm(ctx, vm, rec)
        if ctx.cancel.is_set() or ctx.halt.is_set():
            return _pause(ctx, vm, rec)
        rec.phase = step["name"]
        step["phase"] = RUNNING
        step.setdefault("started", now())
        ctx.store.put_vm(rec)
        emit(ctx, vm, Kind.STEP, step["name"], RUNNING)
        try:
            message = handlers[step["name"]](ctx, vm, rec, step)
        except Paused as paused:
            rec.phase = paused.phase
            ctx.store.put_vm(rec)
            emit(ctx, vm, Kind.VM, paused.phase, PAUSED)
            return rec
        except TransferCanceled:
            if ctx.canceled():
                run_cleanup(ctx, vm, rec, cleanup)
                return cancel_vm(ctx, vm, rec)
            return _pause(ctx, vm, rec)
        except Exception as exc:  # noqa: BLE001 - any failure ends this VM, not the pass
            reason = f"{type(exc).__name__}: {exc}" if not _is_user_facing(exc) else str(exc)
            step["phase"] = FAILED
            step["error"] = {"phase": step["name"], "reasons": [reason]}
            step["completed"] = now()
            emit(ctx, vm, Kind.STEP, step["name"], FAILED, reason)
            run_cleanup(ctx, vm, rec, cleanup)
            return _finish(ctx, vm, rec, "Failed", {"phase": step["name"], "reasons": [reason]})
        if message and message.startswith("skipped:"):
            step["phase"] = SKIPPED
        else:
            step["phase"] = COMPLETED
        if message:
            step["message"] = message
        step["completed"] = now()
        ctx.store.put_vm(rec)
        emit(ctx, vm, Kind.STEP, step["name"], step["phase"], message or "")
    return _finish(ctx, vm, rec, "Succeeded", None)


def run_cleanup(ctx: RunContext, vm: VmPlan, rec: VmProgress, cleanup: Cleanup | None) -> None:
    """Run the itinerary's cleanup; its own failure is logged in the record, never raised."""
    if cleanup is None:
        return
    try:
        cleanup(ctx, vm, rec)
    except Exception as exc:  # noqa: BLE001 - the VM ends anyway; say what was left
        rec.error = {**(rec.error or {}), "cleanup": f"{type(exc).__name__}: {exc}"}
        ctx.store.put_vm(rec)


def _is_user_facing(exc: Exception) -> bool:
    from reconciler.sources import SourceError
    from reconciler.transfer.engine import TransferError

    return isinstance(exc, SourceError | TargetError | TransferError)


def _pause(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> VmProgress:
    """The reconciler is shutting down: keep the VM where it is; the next start resumes it."""
    ctx.store.put_vm(rec)
    emit(ctx, vm, Kind.VM, rec.phase, PAUSED, "stopped at a durable point; resumed next start")
    return rec


def cancel_vm(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> VmProgress:
    """The user canceled the VM: remove what was made for it on the target, as MTV does.

    Also for a VM still queued for a slot: a run cut short by a killed pass left disks behind."""
    for claim in claims_of(ctx, vm):
        ctx.target.delete_disk(claim)
        ctx.store.reset_disk(disk_id(ctx, vm, claim))
    ctx.target.delete_vm(vm.namespace, vm.target_name)
    # and whatever else a failed attempt left (transfer Jobs, their Secrets)
    selector = {k: vm.labels[k] for k in ("plan", "vmID") if k in vm.labels}
    if len(selector) == 2:
        ctx.target.cleanup(vm.namespace, selector)
    for step in rec.steps:
        if step["phase"] == RUNNING:
            step["phase"] = CANCELED
            step["completed"] = now()
    message = "canceled by the Migration; target disks removed"
    emit(ctx, vm, Kind.STEP, rec.phase, CANCELED, message)
    return _finish(ctx, vm, rec, CANCELED, None)


def _finish(
    ctx: RunContext, vm: VmPlan, rec: VmProgress, result: str, error: dict | None
) -> VmProgress:
    rec.result = result
    rec.phase = "Completed" if result == "Succeeded" else result
    cleanup = (rec.error or {}).get("cleanup")  # what a cleanup could not remove stays said
    rec.error = {**(error or {}), "cleanup": cleanup} if cleanup else error
    if result == "Failed" and rec.error is not None:
        partial = partial_images(ctx, vm)
        if partial:
            rec.error["partialImages"] = partial
    rec.completed = now()
    ctx.store.put_vm(rec)
    reasons = "; ".join((error or {}).get("reasons", []))
    emit(ctx, vm, Kind.VM, rec.phase, result, reasons)
    return rec


def partial_images(ctx: RunContext, vm: VmPlan) -> dict[str, Any] | None:
    """What a failed VM's target disks hold: kept so a new Migration resumes them, and said
    (with the target they hold space on) so the space they take is never a mystery."""
    disks = {}
    for claim in claims_of(ctx, vm):
        try:
            used = ctx.target.disk_usage(claim)
        except Exception:  # noqa: BLE001 - the VM fails anyway; what it holds is unknown
            continue
        if used:
            disks[claim.name] = used
    if not disks:
        return None
    return {"target": ctx.target.describe(), "bytes": sum(disks.values()), "disks": disks}


def not_built(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """A step this tool does not run yet: skipped, and status says why."""
    return NOT_BUILT[step["name"]]
