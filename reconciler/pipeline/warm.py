"""Run one VM through the warm itinerary, a little in each pass; no pass waits for a round.

The VM keeps running at the source.  First pass: the initial snapshot, the PVCs, a full copy
of every disk as that snapshot holds it (round 0, recorded with the disk's change id), then the
VM waits in ``CopyingPaused`` until ``nextPrecopyAt`` and the cutover is proposed as a branch
to merge.  Each later pass that finds a round due runs it in the safe order (MTV-1656): the
change ids of the previous snapshot are stored already, so remove that snapshot, create the
next one, ask for the areas changed since the stored change id, copy them, store the new change
ids.  When :func:`decide_cutover` says so: power off, remove the previous snapshot, final
snapshot, final delta, remove it, create the VirtualMachine running.

Everything a later pass needs is in the VM's record (``VmProgress.warm``): the snapshot this
tool has on the VM, each disk's change id, the round in flight, the rounds done, the cutover
record and proposal, the power-off time.  Snapshots this tool made are removed when the VM
fails, is canceled or its plan is deleted; one a killed pass took but never recorded is
found by its name (``mtv-gitops-...``) and removed before the next is taken.

A precopy round that fails is tried again (the same round, the same snapshot) after
``min(interval, RETRY_SECONDS)``; :data:`MAX_CONSECUTIVE_FAILURES` in a row, or a round that
would take more than :data:`MAX_SNAPSHOTS` snapshots, ends the VM with MTV's
"warm import retry limit reached".
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from reconciler.pipeline.cold import (
    disk_request,
    each_disk,
    emit_progress,
    ensure_disks_allocated,
    ensure_disks_copied,
    ensure_source_off,
    ensure_source_stopped,
)
from reconciler.pipeline.convert import converted_guest, ensure_guest_converted
from reconciler.pipeline.hooks import ensure_hook_run
from reconciler.pipeline.phases import COPYING_PAUSED, now
from reconciler.pipeline.steps import (
    Handler,
    Paused,
    RunContext,
    cancel_vm,
    claims_of,
    labelled,
    run_cleanup,
    run_steps,
)
from reconciler.planner.cutover import CutoverAction, CutoverRecord, decide_cutover
from reconciler.planner.model import DiskPlan, VmPlan
from reconciler.progress.store import VmProgress
from reconciler.sources import (
    OWN_SNAPSHOT_PREFIX,
    SourceConnection,
    SourceError,
    WarmSource,
    release_disks,
    warm_source,
)
from reconciler.targets.base import DiskClaim, TargetError
from reconciler.targets.kubevirt.manifests import vm_manifest
from reconciler.transfer.engine import StreamBudget, TransferCanceled

MAX_SNAPSHOTS = 28  # MTV's limit of precopy snapshots per VM
MAX_CONSECUTIVE_FAILURES = 3  # precopy rounds failing in a row before the VM fails
RETRY_SECONDS = 60.0  # a failed round is tried again this soon (or at the interval if sooner)
RETRY_LIMIT = "warm import retry limit reached"


def run_warm_vm(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> VmProgress:
    """Walk the warm steps this pass can do; the VM may end the pass in ``CopyingPaused``."""
    if rec.warm is None:
        rec.warm = {"precopies": []}
    _say_if_too_late(ctx, rec)
    handlers: dict[str, Handler] = {
        "PreHook": ensure_hook_run,
        "PostHook": ensure_hook_run,
        "ConvertGuest": ensure_guest_converted,
        "CreateInitialSnapshot": ensure_initial_snapshot,
        "AllocateDisks": ensure_disks_allocated,
        "CopyDisks": ensure_initial_copy,
        "Precopy": ensure_precopied,
        "PowerOffSource": ensure_source_powered_off,
        "WaitForPowerOff": ensure_source_stopped,
        "CreateFinalSnapshot": ensure_final_snapshot,
        "CopyFinalDelta": ensure_final_delta,
        "RemoveFinalSnapshot": ensure_final_snapshot_removed,
        "CreateVM": ensure_warm_vm_created,
    }
    return run_steps(ctx, vm, rec, handlers, cleanup=remove_snapshots)


def _state(rec: VmProgress) -> dict[str, Any]:
    if rec.warm is None:
        rec.warm = {"precopies": []}
    return rec.warm


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_of(stamp: str) -> float:
    """Seconds since the epoch of a time status shows (``now()``'s format)."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _snapshot_name(ctx: RunContext, label: str) -> str:
    return f"{OWN_SNAPSHOT_PREFIX}{ctx.migration}-{label}"


def ensure_initial_snapshot(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Check the disks can be read, store the power state, take the first snapshot and store
    each disk's change id at it; a disk without changed block tracking fails the VM here."""
    src = warm_source(ctx.source)
    w = _state(rec)
    if not w.get("snapshotId"):
        for disk in vm.disks:
            src.open_disk(vm.vm_id, disk.key).close()
        w["powerState"] = src.power_state(vm.vm_id)
        if ctx.source_ref is not None:
            w["provider"] = ctx.source_ref.key  # to remove snapshots if the plan is deleted
        w["snapshotId"] = _take_snapshot(
            ctx, vm, rec, "0", "mtv-gitops warm migration: initial copy"
        )
        ctx.store.put_vm(rec)
    if not w.get("changeIds"):
        ids = src.change_ids(vm.vm_id, w["snapshotId"])
        off = [d.key for d in vm.disks if not ids.get(d.key)]
        if off:
            raise SourceError(
                f"changed block tracking is off for disk(s) {', '.join(off)} of "
                f"{vm.source_name}: enable it on the source, or run the plan cold"
            )
        w["changeIds"] = {d.key: ids[d.key] for d in vm.disks}
        ctx.store.put_vm(rec)
    return f"snapshot {w['snapshotId']}; source VM is {w.get('powerState', 'Unknown')}"


def ensure_initial_copy(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Round 0: every disk whole, as the initial snapshot holds it (Forklift's first precopy)."""
    w = _state(rec)
    message = ensure_disks_copied(
        ctx, vm, rec, step, snapshot_id=w["snapshotId"], change_ids=w["changeIds"]
    )
    if not w["precopies"]:
        tasks = step.get("tasks", [])
        w["precopies"].append(
            {
                "round": 0,
                "start": step.get("started") or now(),
                "end": now(),
                "bytes": sum(t.get("bytes", 0) for t in tasks),
                "snapshot": w["snapshotId"],
                "full": True,
            }
        )
        w["nextPrecopyAt"] = _stamp(time.time() + ctx.precopy_interval)
    ctx.store.put_vm(rec)
    return f"{message}; round 0 (full copy) at snapshot {w['snapshotId']}"


def _say_if_too_late(ctx: RunContext, rec: VmProgress) -> None:
    """A cutover under way goes on whatever the Migration says now; when ``spec.cutover``
    was removed or changed after it started, the VM's status says it is too late."""
    w = _state(rec)
    if not (w.get("cutover") or {}).get("started") or rec.finished:
        return
    decision = decide_cutover(ctx.cutover, datetime.now(UTC), True, _record(w))
    if decision.action == CutoverAction.TOO_LATE and w.get("cutoverMessage") != decision.message:
        w["cutoverMessage"] = decision.message
        ctx.store.put_vm(rec)


def _record(w: dict[str, Any]) -> CutoverRecord:
    doc = w.get("cutover") or {}

    def when(key: str) -> datetime | None:
        return datetime.fromisoformat(doc[key]) if doc.get(key) else None

    return CutoverRecord(when("proposed"), when("scheduled"), bool(doc.get("started")))


def _record_doc(record: CutoverRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {"started": record.started}
    if record.proposed is not None:
        doc["proposed"] = record.proposed.isoformat()
    if record.scheduled is not None:
        doc["scheduled"] = record.scheduled.isoformat()
    return doc


def ensure_precopied(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Between rounds: propose the cutover, run a round when one is due, then pause; ends
    (so the cutover steps follow) when the Migration's ``spec.cutover`` is due."""
    w = _state(rec)
    if not w.get("current"):
        decision = decide_cutover(ctx.cutover, datetime.now(UTC), True, _record(w))
        w["cutover"] = _record_doc(decision.record)
        w["cutoverMessage"] = decision.message
        if decision.action in (CutoverAction.CUTOVER, CutoverAction.TOO_LATE):
            ctx.store.put_vm(rec)
            return decision.message
        if decision.action == CutoverAction.PROPOSE and ctx.propose is not None:
            assert decision.when is not None
            try:
                w["cutoverBranch"], w["cutoverInstruction"] = ctx.propose(decision.when)
            except Exception as exc:  # noqa: BLE001 - proposing again next pass; copying goes on
                w["cutoverInstruction"] = f"cutover proposal not pushed yet: {exc}"
        elif decision.action == CutoverAction.WAIT and decision.when is not None:
            w["cutoverAt"] = _stamp(decision.when.timestamp())
        elif decision.action == CutoverAction.CANCEL:
            w.pop("cutoverAt", None)
        ctx.store.put_vm(rec)
    due = epoch_of(w.get("nextPrecopyAt") or now()) <= time.time()
    if w.get("current") or due:
        if not w.get("current") and w.get("snapshotsTaken", 0) >= MAX_SNAPSHOTS:
            raise SourceError(
                f"{RETRY_LIMIT}: {MAX_SNAPSHOTS} precopy snapshots were taken without a "
                "cutover; merge the cutover branch sooner or raise controller_precopy_interval, "
                "then push a new Migration"
            )
        try:
            if not w.get("current"):
                _next_snapshot(ctx, vm, rec, str(_next_round(w)))
            _copy_round(ctx, vm, rec)
        except TransferCanceled:
            raise
        except Exception as exc:  # noqa: BLE001 - a round is tried again, up to the limit
            _round_failed(ctx, rec, exc)
        else:
            w["consecutiveFailures"] = 0
            w["nextPrecopyAt"] = _stamp(time.time() + ctx.precopy_interval)
        ctx.store.put_vm(rec)
    raise Paused(COPYING_PAUSED)


def _round_failed(ctx: RunContext, rec: VmProgress, exc: Exception) -> None:
    """Count a failed precopy round and set when it is tried again; the last one allowed
    fails the VM (its snapshots are then removed)."""
    w = _state(rec)
    reason = (
        str(exc) if isinstance(exc, SourceError | TargetError) else f"{type(exc).__name__}: {exc}"
    )
    w["failures"] = w.get("failures", 0) + 1
    w["consecutiveFailures"] = w.get("consecutiveFailures", 0) + 1
    w["lastFailure"] = {"time": now(), "message": reason}
    if w["consecutiveFailures"] >= MAX_CONSECUTIVE_FAILURES:
        raise SourceError(
            f"{RETRY_LIMIT}: {w['consecutiveFailures']} precopy rounds failed in a row; "
            f"the last: {reason}"
        ) from exc
    w["nextPrecopyAt"] = _stamp(time.time() + min(ctx.precopy_interval, RETRY_SECONDS))


def _next_snapshot(ctx: RunContext, vm: VmPlan, rec: VmProgress, label: str) -> None:
    """The safe order: the previous snapshot's change ids are stored, so remove it, then take
    the next one; the round in flight is recorded before anything is copied."""
    src = warm_source(ctx.source)
    w = _state(rec)
    if w.get("snapshotId"):
        src.remove_snapshot(vm.vm_id, w["snapshotId"])
        w["snapshotId"] = ""
        ctx.store.put_vm(rec)
    snap = _take_snapshot(ctx, vm, rec, label, "mtv-gitops precopy")
    w["snapshotId"] = snap
    w["current"] = {"round": _next_round(w), "snapshot": snap, "start": now()}
    ctx.store.put_vm(rec)


def _next_round(w: dict[str, Any]) -> int:
    return max((p["round"] for p in w["precopies"]), default=-1) + 1


def _take_snapshot(ctx: RunContext, vm: VmPlan, rec: VmProgress, label: str, text: str) -> str:
    """Take a snapshot, after removing those this record named but does not hold (a pass
    killed between taking one and storing its id). The name is stored before the snapshot is
    taken, so such a leftover is always known by name; a snapshot this record never named is
    not ours to remove, whatever it is called (another reconciler may hold it)."""
    src = warm_source(ctx.source)
    w = _state(rec)
    _sweep(src, vm.vm_id, _held(w), _named(w))
    name = _snapshot_name(ctx, label)
    if name not in w.setdefault("snapshotNames", []):
        w["snapshotNames"].append(name)
        ctx.store.put_vm(rec)
    snap = src.create_snapshot(vm.vm_id, name, text)
    w["snapshotsTaken"] = w.get("snapshotsTaken", 0) + 1
    return snap


def _held(w: dict[str, Any]) -> set[str]:
    return {w.get("snapshotId") or "", (w.get("current") or {}).get("snapshot") or ""} - {""}


def _named(w: dict[str, Any]) -> set[str]:
    """The names of every snapshot this record has taken (or was about to take)."""
    return set(w.get("snapshotNames", []))


def _sweep(src: WarmSource, vm_id: str, keep: set[str], names: set[str]) -> list[str]:
    """Remove the VM's snapshots whose name is one of ``names``, except the ids in ``keep``."""
    gone = [sid for sid, name in src.snapshots(vm_id).items() if name in names and sid not in keep]
    for sid in gone:
        src.remove_snapshot(vm_id, sid)
    return gone


def _copy_round(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> dict[str, Any]:
    """Copy what changed since the stored change ids up to the round's snapshot; a round a
    killed pass left is continued under its number with the same areas."""
    src: WarmSource = warm_source(ctx.source)
    w = _state(rec)
    cur = w["current"]
    k, snap = cur["round"], cur["snapshot"]
    new_ids = src.change_ids(vm.vm_id, snap)
    pairs = list(zip(vm.disks, claims_of(ctx, vm), strict=True))
    # asked here, one disk after the other on the pass's connection, before copies run at once
    changed = {
        d.key: tuple(src.changed_extents(vm.vm_id, snap, d.key, w["changeIds"][d.key]))
        for d, _ in pairs
    }
    extents = sum(len(c) for c in changed.values())
    results = []
    lock = threading.Lock()
    budget = StreamBudget(ctx.streams)  # the disks copied at once share the streams

    def copy(disk: DiskPlan, claim: DiskClaim) -> None:
        request = disk_request(
            ctx,
            vm,
            disk,
            claim,
            lambda p: emit_progress(ctx, vm, rec.phase, claim.name, p),
            snapshot_id=snap,
            change_id=new_ids.get(disk.key, ""),
            round=k,
            changed=changed[disk.key],
            since=w["changeIds"][disk.key],
            budget=budget,
        )
        result = ctx.target.copy_disk(request).result
        if ctx.verify and result.target_digest != result.source_digest:
            raise TargetError(f"disk {claim.name}: round {k} does not read back")
        with lock:
            results.append(result)

    each_disk(ctx, pairs, copy)
    written = sum(r.bytes_written for r in results)
    chunks = sum(r.chunks_touched for r in results)
    done = {
        "round": k,
        "start": cur["start"],
        "end": now(),
        "bytes": written,
        "extents": extents,
        "chunks": chunks,
        "snapshot": snap,
    }
    # store the new change ids with the round: the next round starts from them
    w["changeIds"] = {d.key: new_ids.get(d.key, "") for d in vm.disks}
    w["precopies"].append(done)
    del w["current"]
    ctx.store.put_vm(rec)
    return done


def ensure_source_powered_off(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Cutover begins: record when the source went down (downtime counts from here)."""
    w = _state(rec)
    if not w.get("powerOffAt"):
        w["powerOffAt"] = now()
        w["powerOffEpoch"] = time.time()
        ctx.store.put_vm(rec)
    return ensure_source_off(ctx, vm, rec, step)


def ensure_final_snapshot(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Remove the previous snapshot and take the final one (the source is off)."""
    w = _state(rec)
    if not w.get("current"):
        _next_snapshot(ctx, vm, rec, "final")
        w["current"]["final"] = True
        ctx.store.put_vm(rec)
    return f"final snapshot {w['current']['snapshot']}"


def ensure_final_delta(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """The last round: what changed since the last precopy round, up to the power-off."""
    w = _state(rec)
    if w.get("current"):
        done = _copy_round(ctx, vm, rec)
        done["final"] = True
        w["cutoverBytes"] = done["bytes"]
        ctx.store.put_vm(rec)
    return f"{w.get('cutoverBytes', 0)} bytes copied in the final delta"


def ensure_final_snapshot_removed(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Remove the final snapshot, and any other this migration took, so the message below is
    checked; then what else the source made for the rounds (oVirt's checkpoints)."""
    remove_snapshots(ctx, vm, rec)
    return "no snapshot this migration took is left on the source VM"


def ensure_warm_vm_created(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """The VirtualMachine, running when the source ran; the downtime ends here."""
    w = _state(rec)
    for claim in claims_of(ctx, vm):
        if not ctx.target.disk_exists(claim):
            raise TargetError(
                f"PVC {claim.namespace}/{claim.name} is gone after its disk was copied (deleted "
                "by hand?); push a new Migration to copy it again"
            )
    running = w.get("powerState") == "On"
    ctx.target.ensure_vm(vm_manifest(vm, running=running, guest=converted_guest(rec)))
    for claim in claims_of(ctx, vm):
        ctx.target.release_disk(claim)  # no round comes any more
    if "downtimeSeconds" not in w and w.get("powerOffEpoch"):
        w["downtimeSeconds"] = round(time.time() - w["powerOffEpoch"], 1)
        ctx.store.put_vm(rec)
    state = "Always (source was on)" if running else "Halted (source was off)"
    return (
        f"VirtualMachine {vm.namespace}/{vm.target_name} with runStrategy {state}; downtime "
        f"{w.get('downtimeSeconds', 0)}s, {w.get('cutoverBytes', 0)} bytes copied during it"
    )


def cancel_paused_vm(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> VmProgress:
    """A warm VM canceled while it waits between rounds (no pass runs it): its snapshots go,
    then what was made for it on the target, as for a VM canceled mid-copy."""
    run_cleanup(ctx, vm, rec, remove_snapshots)
    return cancel_vm(ctx, labelled(ctx, vm), rec)


def remove_snapshots(ctx: RunContext, vm: VmPlan, rec: VmProgress) -> None:
    """Remove the snapshots this tool has on the VM (failure, cancel, the cutover's end)."""
    abandon_snapshots(ctx.source, vm.vm_id, rec)
    ctx.store.put_vm(rec)


def abandon_snapshots(source: SourceConnection, vm_id: str, rec: VmProgress) -> None:
    """Remove every snapshot this record took on the VM, by id or by the name it stored; the
    record forgets them."""
    w = rec.warm or {}
    src = warm_source(source)
    for snap in sorted(_held(w)):
        src.remove_snapshot(vm_id, snap)
    _sweep(src, vm_id, set(), _named(w))
    w["snapshotId"] = ""
    w.pop("current", None)
    w.pop("snapshotNames", None)
    release_disks(source, vm_id)  # what else the source made for the rounds (checkpoints)


def next_wake(rec: VmProgress, cutover: datetime | None) -> float | None:
    """When a paused warm VM has something to do: its next round or its scheduled cutover."""
    if rec.finished or rec.phase != COPYING_PAUSED or rec.warm is None:
        return None
    times = []
    if rec.warm.get("nextPrecopyAt"):
        times.append(epoch_of(rec.warm["nextPrecopyAt"]))
    if cutover is not None:
        times.append(cutover.timestamp())
    return min(times) if times else None


__all__ = [
    "MAX_CONSECUTIVE_FAILURES",
    "MAX_SNAPSHOTS",
    "RETRY_LIMIT",
    "abandon_snapshots",
    "cancel_paused_vm",
    "epoch_of",
    "next_wake",
    "run_warm_vm",
]
