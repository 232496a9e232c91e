"""Run one VM through the cold itinerary. Every step is an ``ensure_*`` that may run twice.

The steps are walked by the shared runner (:mod:`reconciler.pipeline.steps`), which records
each phase; a resumed copy continues from its recorded chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import nullcontext

from reconciler.pipeline import space
from reconciler.pipeline.convert import converted_guest, ensure_guest_converted
from reconciler.pipeline.hooks import ensure_hook_run
from reconciler.pipeline.phases import COMPLETED, PENDING, RUNNING, now
from reconciler.pipeline.steps import (
    Handler,
    RunContext,
    claims_of,
    disk_id,
    emit,
    run_steps,
)
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.progress.events import DiskProgress, Kind
from reconciler.progress.store import VmProgress
from reconciler.sources import prepare_disks, release_disks, warm_source
from reconciler.targets.base import (
    CopyOutcome,
    CopyRequest,
    DiskClaim,
    DiskLost,
    TargetError,
)
from reconciler.targets.kubevirt.manifests import vm_manifest
from reconciler.transfer.engine import (
    CopyProgress,
    DigestMismatch,
    StreamBudget,
    TransferCanceled,
)
from reconciler.transfer.extents import DiskReader, Extent
from reconciler.transfer.request import DiskCopy

MB = 1024 * 1024  # Forklift reports disk progress in "MB" of 2**20 bytes
POWER_OFF_TIMEOUT = 600.0
DISK_LOST_RETRIES = 2  # a PVC deleted under a running copy is re-created at most this often
SAVE_EVERY = 1.0  # seconds between saves of a running copy's progress to the record


def run_vm(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> VmProgress:
    """Walk the remaining cold steps; a failure ends the VM with the step's error, never a crash."""
    handlers: dict[str, Handler] = {
        "PreHook": ensure_hook_run,
        "PostHook": ensure_hook_run,
        "ConvertGuest": ensure_guest_converted,
        "StorePowerState": ensure_power_state_stored,
        "PowerOffSource": ensure_source_off,
        "WaitForPowerOff": ensure_source_stopped,
        "AllocateDisks": ensure_disks_allocated,
        "CopyDisks": ensure_disks_copied,
        "CreateVM": ensure_vm_created,
    }
    return run_steps(ctx, vm, rec, handlers, cleanup=release_source)


def release_source(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> None:
    """What the source made to read the disks goes when the VM fails or is canceled."""
    release_disks(ctx.source, vm.vm_id)


def ensure_power_state_stored(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Record the power state to restore, after checking every disk can be opened: a VM whose
    disks cannot be read fails here, still running, not after it was powered off."""
    if "powerState" not in step:
        for disk in vm.disks:
            ctx.source.open_disk(vm.vm_id, disk.key).close()
        step["powerState"] = ctx.source.power_state(vm.vm_id)
    return f"source VM was {step['powerState']}; {len(vm.disks)} disk(s) readable"


def _stored_power(rec: VmProgress) -> str:
    return next((s.get("powerState", "") for s in rec.steps if s["name"] == "StorePowerState"), "")


def ensure_source_off(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    if ctx.source.power_state(vm.vm_id) == "Off":
        return "source VM is off"
    ctx.source.power_off(vm.vm_id, POWER_OFF_TIMEOUT)
    return "source VM powered off"


def ensure_source_stopped(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    deadline = time.monotonic() + POWER_OFF_TIMEOUT
    while ctx.source.power_state(vm.vm_id) != "Off":
        if time.monotonic() > deadline:
            raise TargetError(f"source VM {vm.source_name} still on after {POWER_OFF_TIMEOUT:.0f}s")
        time.sleep(2)
    return "source VM is off"


def ensure_disks_allocated(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Namespace, PVC manifests and sparse images; refuse early when space is short.

    A disk without its PVC starts afresh: what the store recorded of an earlier copy was
    written to storage that is gone (a PVC deleted by hand, a canceled VM)."""
    claims = claims_of(ctx, vm)
    free = ctx.target.free_bytes(vm.namespace)
    needed = 0
    prepared = False
    for disk, claim in zip(vm.disks, claims, strict=True):
        if ctx.target.disk_exists(claim):
            continue
        ctx.store.reset_disk(disk_id(ctx, vm, claim))
        if free is None:
            continue  # the target cannot tell: a full PVC is reported by its copy
        if not prepared:
            prepare_disks(ctx.source, vm.vm_id)
            prepared = True
        # a warm VM's disks at its snapshot: a running VM's live disks may not be readable
        # (an oVirt engine downloads a running VM's disk only through its backup)
        reader = open_source(ctx, vm.vm_id, disk.key, (rec.warm or {}).get("snapshotId", ""))
        try:
            needed += sum(e.length for e in reader.extents() if not e.zero)
        finally:
            reader.close()
    if free is not None:
        others = space.reserve(ctx.target, _space_key(ctx, vm), needed, free)
        if others is not None:
            held = f", of which {others / MB:.0f} MB are held for VMs copying now" if others else ""
            raise TargetError(
                f"not enough free space on {ctx.target.describe()}: the disks of "
                f"{vm.source_name} need {needed / MB:.0f} MB of data, {free / MB:.0f} MB "
                f"free{held}{_partials_said(ctx)}; free space or point the target elsewhere, "
                "then push a new Migration"
            )
    try:
        ctx.target.ensure_namespace(vm.namespace, {"app.kubernetes.io/managed-by": "mtv-gitops"})
        for claim in claims:
            ctx.target.ensure_disk(claim)
    except BaseException:
        space.release(ctx.target, _space_key(ctx, vm))
        raise
    return f"{len(claims)} PVC(s) in namespace {vm.namespace}"


def _partials_said(ctx: RunContext) -> str:
    """Partial images of failed VMs on this target, kept for resume: space they hold that a
    user can take back (cancel those VMs) or put to use (resume them with a new Migration)."""
    failed = ctx.store.partial_images(ctx.target.describe())
    if not failed:
        return ""
    total = sum(v.error["partialImages"]["bytes"] for v in failed)
    names = ", ".join(
        f"{v.plan}/{v.vm_name} ({v.error['partialImages']['bytes'] / MB:.0f} MB)" for v in failed
    )
    return (
        f"; partial images of {len(failed)} failed VM(s) hold {total / MB:.0f} MB there "
        f"({names}): a new Migration of their plan resumes them, one listing them in "
        "spec.cancel frees it"
    )


def _space_key(ctx: RunContext, vm: VmPlan) -> str:
    return f"{ctx.plan_key}/{vm.vm_id}"


def ensure_disks_copied(
    ctx: RunContext,
    vm: VmPlan,
    rec: VmProgress,
    step: dict,
    snapshot_id: str = "",
    change_ids: dict[str, str] | None = None,
) -> str:
    """Copy every disk whole; a warm VM's at its snapshot, recording its change ids. The space
    AllocateDisks reserved is given back when the copy ends, done or not."""
    try:
        message = _copy_disks(ctx, vm, rec, step, snapshot_id, change_ids)
    finally:
        space.release(ctx.target, _space_key(ctx, vm))
    if not snapshot_id:  # a cold copy is done: what the source made to read it can go
        release_disks(ctx.source, vm.vm_id)
    return message


def _copy_disks(
    ctx: RunContext,
    vm: VmPlan,
    rec: VmProgress,
    step: dict,
    snapshot_id: str,
    change_ids: dict[str, str] | None,
) -> str:
    claims = claims_of(ctx, vm)
    change_ids = change_ids or {}
    total = sum(c.size for c in claims)
    tasks = step.setdefault("tasks", [])
    by_name = {t["name"]: t for t in tasks}
    for claim in claims:
        if claim.name not in by_name:
            t = {
                "name": claim.name,
                "phase": PENDING,
                "progress": {"total": claim.size // MB, "completed": 0},
                "annotations": {"unit": "MB"},
            }
            tasks.append(t)
            by_name[claim.name] = t
    step["progress"] = {"total": total // MB, "completed": 0}
    step["annotations"] = {"unit": "MB"}
    lock = threading.Lock()  # the disks' threads share the step and the record
    budget = StreamBudget(ctx.streams)  # the disks copied at once share the streams
    done = sum(c.size for c in claims if by_name[c.name]["phase"] == COMPLETED)
    running: dict[str, int] = {}  # bytes copied so far of each disk being copied
    last_save = 0.0

    def copy(disk: DiskPlan, claim: DiskClaim) -> None:
        nonlocal done, last_save
        task = by_name[claim.name]
        with lock:
            task["phase"] = RUNNING
            task.setdefault("started", now())

        def progress(p: CopyProgress) -> None:
            nonlocal last_save
            with lock:
                running[claim.name] = p.bytes_done
                task["progress"]["completed"] = p.bytes_done // MB
                step["progress"]["completed"] = (done + sum(running.values())) // MB
                step["annotations"] = {
                    "unit": "MB",
                    "rate": f"{p.rate / MB:.1f} MB/s",
                    "eta": f"{p.eta:.0f}s" if p.eta is not None else "unknown",
                }
                if time.monotonic() - last_save > SAVE_EVERY:
                    last_save = time.monotonic()
                    ctx.store.put_vm(rec)
            emit_progress(ctx, vm, step.get("name", "CopyDisks"), claim.name, p)

        request = disk_request(
            ctx,
            vm,
            disk,
            claim,
            progress,
            snapshot_id=snapshot_id,
            change_id=change_ids.get(disk.key, ""),
            budget=budget,
        )
        outcome = _copy_one(ctx, request, task, lock)
        result = outcome.result
        with lock:
            task["phase"] = COMPLETED
            task["completed"] = now()
            task["progress"]["completed"] = claim.size // MB
            task["digest"] = result.source_digest
            task["bytes"] = result.bytes_written
            if result.resumed_chunks:
                task["annotations"]["resumedChunks"] = str(result.resumed_chunks)
            if outcome.attempts > 1:
                task["annotations"]["attempts"] = str(outcome.attempts)
            if ctx.verify:
                task["verified"] = result.target_digest == result.source_digest
            running.pop(claim.name, None)
            done += claim.size
            step["progress"]["completed"] = (done + sum(running.values())) // MB
            ctx.store.put_vm(rec)

    pending = [
        (disk, claim)
        for disk, claim in zip(vm.disks, claims, strict=True)
        if by_name[claim.name]["phase"] != COMPLETED
    ]
    if pending and not snapshot_id:  # made here, before any copy: a transfer Job only reads
        prepare_disks(ctx.source, vm.vm_id)
    each_disk(ctx, pending, copy)
    step["annotations"] = {"unit": "MB"}
    how = "verified" if ctx.verify else "not verified (verify off)"
    return f"{len(claims)} disk(s) copied, digests {how}"


def emit_progress(ctx: RunContext, vm: VmPlan, phase: str, disk: str, p: CopyProgress) -> None:
    """Tell subscribers how far a disk's copy is (never waits on them)."""
    progress = DiskProgress(p.total, p.bytes_done, p.resumed_bytes, p.rate, p.eta)
    emit(ctx, vm, Kind.DISK, phase, RUNNING, disk=disk, progress=progress)


def disk_request(
    ctx: RunContext,
    vm: VmPlan,
    disk: DiskPlan,
    claim: DiskClaim,
    on_progress: Callable[[CopyProgress], None],
    *,
    snapshot_id: str = "",
    change_id: str = "",
    round: int = 0,
    changed: tuple[Extent, ...] = (),
    since: str = "",
    budget: StreamBudget | None = None,
) -> CopyRequest:
    """The request for one disk's copy, the whole disk or a warm round of it (``round``,
    ``changed`` since the change id ``since``), read at ``snapshot_id`` when given."""
    copy = DiskCopy(
        vm_id=vm.vm_id,
        disk_key=disk.key,
        snapshot_id=snapshot_id,
        round=round,
        since=since,
        change_id=change_id,
        streams=ctx.streams,
        chunk_mib=max(1, ctx.chunk_size // MB),
        verify=ctx.verify,
        max_mibps=ctx.max_bytes_per_second / MB if ctx.max_bytes_per_second else None,
    )
    return CopyRequest(
        claim=claim,
        copy=copy,
        disk_id=disk_id(ctx, vm, claim),
        labels={**vm.labels, "vmDisk": disk.key},
        source=ctx.source_ref,
        open_source=lambda: open_source(ctx, vm.vm_id, disk.key, snapshot_id),
        store=ctx.store,
        on_progress=on_progress,
        halt=ctx.halt,
        changed=changed,
        budget=budget,
    )


def open_source(ctx: RunContext, vm_id: str, disk_key: str, snapshot_id: str = "") -> DiskReader:
    """A reader of the disk, at the snapshot when one is given (a warm VM's)."""
    if snapshot_id:
        return warm_source(ctx.source).open_disk(vm_id, disk_key, snapshot_id=snapshot_id)
    return ctx.source.open_disk(vm_id, disk_key)


def each_disk(
    ctx: RunContext,
    disks: list[tuple[DiskPlan, DiskClaim]],
    copy: Callable[[DiskPlan, DiskClaim], None],
) -> None:
    """``copy`` each disk, up to ``ctx.parallel_disks`` at once (on the kubevirt target each
    is a transfer Job, so their Jobs exist together).

    A disk that fails starts no further disk but lets those already copying finish, so what
    they copied stays recorded; then the first failure is raised (a halt, which stops every
    copy at once, only when nothing failed otherwise)."""
    width = max(1, min(ctx.parallel_disks, len(disks)))
    if width == 1:
        for disk, claim in disks:
            copy(disk, claim)
        return
    failures: list[BaseException] = []
    queue = list(disks)
    with ThreadPoolExecutor(width, thread_name_prefix="disk") as pool:
        running = {pool.submit(copy, *queue.pop(0)) for _ in range(width)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.exception() is not None:
                    failures.append(future.exception())  # type: ignore[arg-type]
            while queue and not failures and len(running) < width:
                running.add(pool.submit(copy, *queue.pop(0)))
    if failures:
        raise next((f for f in failures if not isinstance(f, TransferCanceled)), failures[0])


def _copy_one(
    ctx: RunContext, request: CopyRequest, task: dict, lock: threading.Lock | None = None
) -> CopyOutcome:
    """One disk through the target; a PVC found missing (deleted by hand) is re-created and
    its copy restarts, a copy that does not read back leaves nothing to resume from. ``lock``
    guards ``task`` when other disks of the VM copy at once."""
    claim = request.claim
    for attempt in range(DISK_LOST_RETRIES + 1):
        if not ctx.target.disk_exists(claim):
            ctx.store.reset_disk(request.disk_id)
            ctx.target.ensure_disk(claim)
            with lock or nullcontext():
                task["annotations"]["recreated"] = (
                    f"PVC {claim.namespace}/{claim.name} was missing: re-created, copy restarted"
                )
        try:
            return ctx.target.copy_disk(request)
        except DiskLost:
            if attempt == DISK_LOST_RETRIES:
                raise
        except DigestMismatch:
            # nothing recorded for this disk can be trusted: the next run starts it afresh
            ctx.store.reset_disk(request.disk_id)
            ctx.target.delete_disk(claim)
            raise
    raise AssertionError("unreachable")


def ensure_vm_created(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    for claim in claims_of(ctx, vm):
        if not ctx.target.disk_exists(claim):
            ctx.store.reset_disk(disk_id(ctx, vm, claim))
            raise TargetError(
                f"PVC {claim.namespace}/{claim.name} is gone after its disk was copied (deleted "
                "by hand?); push a new Migration to copy it again"
            )
    running = _stored_power(rec) == "On"
    ctx.target.ensure_vm(vm_manifest(vm, running=running, guest=converted_guest(rec)))
    state = "Always (source was on)" if running else "Halted (source was off)"
    return f"VirtualMachine {vm.namespace}/{vm.target_name} with runStrategy {state}"
