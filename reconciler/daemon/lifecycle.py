"""A Plan's end of life, declaratively: archived (``spec.archived: true``) or deleted (its
file removed).

Either way every temporary object the plan left is removed, as MTV asks users to do by hand
before deleting a plan (BZ#2018974): transfer and hook Jobs with their Secrets and ConfigMaps,
checkpoint PVCs, the partial target disks of VMs that failed or were canceled before their
VirtualMachine was created, and the snapshots a warm VM left on its source.  Migrated VMs stay,
with their disks.  A deleted plan whose Migration still runs keeps everything until the run is
canceled (its Migration file removed too); ``status/repo.yaml`` says so meanwhile.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from reconciler.pipeline.phases import now
from reconciler.pipeline.warm import abandon_snapshots
from reconciler.progress.store import ProgressStore, VmProgress
from reconciler.sources import SourceConnection
from reconciler.targets.base import Target

log = logging.getLogger(__name__)
PLACE_KEY = "plan.place."  # + plan key: where its VMs went (target namespace, destination)
CLEANED_KEY = "plan.cleaned."  # + plan key: the archived plan's temporaries are gone


@dataclass
class Cleanup:
    """What a plan's cleanup removed and what it could not."""

    removed: int = 0
    problems: list[str] = field(default_factory=list)


def remember_place(store: ProgressStore, plan_key: str, namespace: str, destination: str) -> None:
    """Where the plan's VMs go, kept so the plan's cleanup finds them after its file is gone."""
    value = json.dumps({"namespace": namespace, "destination": destination}, sort_keys=True)
    if store.get(PLACE_KEY + plan_key) != value:
        store.set(PLACE_KEY + plan_key, value)


def place_of(store: ProgressStore, plan_key: str) -> dict[str, str]:
    try:
        found = json.loads(store.get(PLACE_KEY + plan_key) or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _created(rec: VmProgress) -> bool:
    return any(s["name"] == "CreateVM" and s.get("phase") == "Completed" for s in rec.steps)


def vm_label(vm_id: str) -> str:
    """The ``vmID`` label value of a VM id, as the planner makes it."""
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in vm_id)[:63]
    return clean.strip("-_.") or "vm"


def clean_up_plan(
    store: ProgressStore,
    target: Target,
    plan_key: str,
    namespace: str,
    source: SourceConnection | str | None,
    why: str,
) -> Cleanup:
    """Remove what the plan left on the target and the source; migrated VMs stay.  VMs not
    finished end Canceled (``why``), and so does a Migration still open."""
    out = Cleanup()
    plan = plan_key.partition("/")[2]
    for rec in store.vms(plan_key):
        labels = {"plan": plan, "vmID": vm_label(rec.vm_id)}
        try:
            if rec.result == "Succeeded" or _created(rec):
                out.removed += target.cleanup_temporaries(namespace, labels)
            else:
                out.removed += target.cleanup(namespace, labels)
        except Exception as exc:  # noqa: BLE001 - said in status; tried again next pass
            out.problems.append(f"VM {rec.vm_name}: {type(exc).__name__}: {exc}")
            continue
        if rec.warm and not rec.finished:
            if isinstance(source, str) or source is None:
                out.problems.append(
                    f"VM {rec.vm_name}: snapshots of mtv-gitops may be left on the source "
                    f"VM: {source or 'no connection to its provider'}"
                )
                continue
            try:
                abandon_snapshots(source, rec.vm_id, rec)
            except Exception as exc:  # noqa: BLE001 - said in status; tried again next pass
                out.problems.append(f"VM {rec.vm_name}: snapshots: {type(exc).__name__}: {exc}")
                continue
        if not rec.finished:
            rec.result, rec.phase, rec.completed = "Canceled", "Canceled", now()
            rec.error = {"phase": "Canceled", "reasons": [why]}
            store.put_vm(rec)
    for mig in store.migrations(plan_key):
        if mig.started and not mig.completed:
            mig.result, mig.message, mig.completed = "Canceled", why, now()
            store.put_migration(mig)
    log.info("plan %s: %s; %d temporary object(s) removed", plan_key, why, out.removed)
    return out
