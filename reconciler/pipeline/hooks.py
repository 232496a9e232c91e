"""The PreHook and PostHook steps: run the VM's hook on the target, keep its outcome.

A PreHook comes first in both itineraries, so a failed one fails the VM before anything is
powered off; a PostHook comes last, so a failed one fails the VM and leaves what was migrated
in place.  A hook that succeeded for this Migration is recorded in the VM's step (the progress
store) before the step is marked completed, so a pass killed in between does not run it again;
one that was still running when the pass died runs again (playbooks are expected to be
idempotent).
"""

from __future__ import annotations

from reconciler.hooks.inputs import dump, workload_document
from reconciler.hooks.model import HookOutcome, HookRun
from reconciler.pipeline.phases import now
from reconciler.pipeline.steps import RunContext
from reconciler.planner.model import VmPlan
from reconciler.progress.store import VmProgress
from reconciler.targets.base import TargetError
from reconciler.transfer.engine import TransferCanceled

SUCCEEDED, FAILED = "Succeeded", "Failed"


class HookFailed(TargetError):
    """The VM's hook ran and failed (or could not run); the message says which and why."""


def ensure_hook_run(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    """Run the hook the plan gives the VM for this step, once per Migration."""
    name = step["name"]
    ref = dict(vm.hooks).get(name, "")
    done = step.get("hook") or {}
    if done.get("result") == SUCCEEDED and done.get("migration") == ctx.migration:
        return _said(done)  # a killed pass ran it to its end already
    hook = ctx.hooks.get(ref)
    if hook is None:
        raise HookFailed(f"{name} {ref}: the Hook is not in the repo")
    run = HookRun(
        hook=hook,
        step=name,
        plan=ctx.plan_key.partition("/")[2],
        plan_namespace=ctx.plan_key.partition("/")[0],
        migration=ctx.migration,
        vm_id=vm.vm_id,
        vm_name=vm.source_name,
        namespace=vm.namespace,
        plan_yml=ctx.plan_yml,
        workload_yml=_workload(ctx, vm),
        service_account=hook.service_account,
        labels={**vm.labels, "step": name.lower()},
        halt=ctx.halt,
    )
    step["hook"] = {"name": ref, "image": hook.image, "migration": ctx.migration, "started": now()}
    ctx.store.put_vm(rec)
    outcome = ctx.target.run_hook(run)
    if outcome.halted:
        raise TransferCanceled(f"{name} {ref} stopped by a shutdown; it runs again next pass")
    _record(step["hook"], outcome)
    ctx.store.put_vm(rec)
    if not outcome.succeeded:
        raise HookFailed(f"{name} {ref} failed ({outcome.how}): {outcome.message}")
    return _said(step["hook"])


def _workload(ctx: RunContext, vm: VmPlan) -> str:
    """The VM's Workload as Forklift's hook-runner gets it, from the source's inventory
    document (a source that cannot give one gives the VM's id and name)."""
    try:
        doc = ctx.source.validation_input(vm.vm_id)
    except Exception:  # noqa: BLE001 - a hook still gets the VM it runs for
        doc = {"id": vm.vm_id, "name": vm.source_name}
    ref = ctx.source_ref
    return dump(workload_document(doc, ref.type if ref else "", ref.name if ref else ""))


def _record(into: dict, outcome: HookOutcome) -> None:
    into["result"] = SUCCEEDED if outcome.succeeded else FAILED
    into["ran"] = outcome.how
    into["completed"] = now()
    if outcome.message:
        into["message"] = outcome.message
    into["log"] = list(outcome.log)


def _said(record: dict) -> str:
    return f"hook {record.get('name')} succeeded ({record.get('ran')})"
