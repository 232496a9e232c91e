"""Render the status files under ``status/`` from desired state, decisions and progress.

Deterministic on purpose: the same facts give the same bytes, so a pass that changed nothing
commits nothing.  Conditions carry no timestamps; VM steps carry their own start/end times.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifests.emit import dump_yaml
from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired
from reconciler.manifests.models import API_VERSION
from reconciler.planner.model import PlanDecision
from reconciler.progress.store import MigrationRecord, VmProgress

STATUS_DIR = "status"
REPO_STATUS = f"{STATUS_DIR}/repo.yaml"


@dataclass
class ProviderState:
    """What the pass saw of one provider."""

    ready: bool
    message: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    """Everything the status files are made from, gathered by the pass."""

    revision: str
    desired: Desired
    ref_errors: list[ManifestError]
    decisions: list[PlanDecision]
    providers: dict[tuple[str, str], ProviderState]
    vms: dict[str, list[VmProgress]]  # plan key -> records
    migrations: dict[str, list[MigrationRecord]]  # plan key -> records
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # provider type -> rule set
    # plan key -> VM id -> why the VM waits for a slot (controller_max_vm_inflight)
    waiting: dict[str, dict[str, str]] = field(default_factory=dict)
    # manifest file -> the newest commit that changed it: an object's ``observedRevision``
    # (``revision`` when its file is not known), so one commit rewrites only its objects'
    # status, and ``status/repo.yaml``
    file_revisions: dict[str, str] = field(default_factory=dict)
    # deleted plans whose leftovers stay (a Migration still runs): plan key -> why
    deleted_plans: dict[str, str] = field(default_factory=dict)


def status_path(kind: str, namespace: str, name: str) -> str:
    return f"{STATUS_DIR}/{kind.lower()}/{namespace}/{name}.yaml"


_DUMPED: dict[str, str] = {}  # a document's JSON -> its YAML: most status repeats each write
_DUMPED_MAX = 50_000


def _typed(value: object) -> str:
    return f"{type(value).__qualname__}:{value!r}"


def dump(doc: dict[str, Any]) -> str:
    """The document as YAML; remembered, since the writer renders every object's status on
    every write and YAML emitting costs a hundred times what JSON does."""
    key = json.dumps(doc, separators=(",", ":"), default=_typed)
    found = _DUMPED.get(key)
    if found is None:
        found = dump_yaml(doc)
        if len(_DUMPED) >= _DUMPED_MAX:
            _DUMPED.clear()
        _DUMPED[key] = found
    return found


def _obj(kind: str, namespace: str, name: str, status: dict[str, Any]) -> str:
    meta = {"name": name, "namespace": namespace}
    return dump({"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "status": status})


def _errors_by_obj(errors: list[ManifestError]) -> dict[str, list[ManifestError]]:
    out: dict[str, list[ManifestError]] = {}
    for e in errors:
        out.setdefault(e.obj, []).append(e)
    return out


def render(snap: Snapshot) -> dict[str, str]:
    """Path -> content for every status file that should exist now."""
    files: dict[str, str] = {}
    errs = _errors_by_obj(snap.desired.errors + snap.ref_errors)
    decided = {d.key: d for d in snap.decisions}
    for kind, objs in sorted(snap.desired.objects.items()):
        for (ns, name), m in sorted(objs.items()):
            if kind == "Plan":
                status = _plan_status(snap, decided[f"{ns}/{name}"], errs.get(m.ref, []))
            elif kind == "Migration":
                status = _migration_status(snap, m, errs.get(m.ref, []))
            elif kind == "Provider":
                status = _provider_status(snap.providers.get((ns, name)), errs.get(m.ref, []))
                _rules_condition(status, m.spec.type, snap.rules.get(m.spec.type))
            else:
                status = {"conditions": _error_conditions(errs.get(m.ref, []))}
            status["observedRevision"] = snap.file_revisions.get(m.location.file, snap.revision)
            files[status_path(kind, ns, name)] = _obj(kind, ns, name, status)
    for kind, ns, name in sorted(snap.desired.broken):
        ref = f"{kind} {ns}/{name}"
        status = {
            "conditions": _error_conditions(errs.get(ref, [])),
            "observedRevision": snap.revision,
        }
        files[status_path(kind, ns, name)] = _obj(kind, ns, name, status)
    loose = [str(e) for e in snap.desired.errors if not e.obj]
    repo: dict[str, Any] = {"observedRevision": snap.revision, "errors": loose, "valid": not loose}
    if snap.rules:
        repo["validation"] = {t: snap.rules[t] for t in sorted(snap.rules)}
    if snap.deleted_plans:
        repo["deletedPlans"] = [
            {"plan": key, "message": why} for key, why in sorted(snap.deleted_plans.items())
        ]
    files[REPO_STATUS] = dump(repo)
    return files


def _rules_condition(status: dict[str, Any], t: str, rules: dict[str, Any] | None) -> None:
    """A rejected or questionable rule set shows on every Provider of its type."""
    if not rules:
        return
    if rules.get("errors"):
        status["conditions"].append(
            {
                "type": "ValidationRulesRejected",
                "status": "True",
                "category": "Warning",
                "message": f"the repo's {t} rules were rejected, so VMs are validated with the "
                f"{rules['inUse']} rules (version {rules['rulesVersion']}): "
                + "; ".join(rules["errors"]),
            }
        )
    if rules.get("warnings"):
        status["conditions"].append(
            {
                "type": "ValidationRulesWarning",
                "status": "True",
                "category": "Warning",
                "message": "; ".join(rules["warnings"]),
            }
        )
    status["validation"] = {
        "rulesVersion": rules["rulesVersion"],
        "rulesDigest": rules["rulesDigest"],
    }


def _error_conditions(errors: list[ManifestError]) -> list[dict[str, Any]]:
    if not errors:
        return [{"type": "Ready", "status": "True", "category": "Required", "message": "Valid."}]
    return [
        {
            "type": "NotValid",
            "status": "True",
            "category": "Critical",
            "message": "; ".join(str(e) for e in errors),
        }
    ]


def _provider_status(state: ProviderState | None, errors: list[ManifestError]) -> dict[str, Any]:
    conds = _error_conditions(errors) if errors else []
    if state is None:
        if not errors:
            conds.append(
                {
                    "type": "Ready",
                    "status": "True",
                    "category": "Required",
                    "message": "Not used by any plan; not connected.",
                }
            )
        return {"conditions": conds}
    if state.ready:
        conds.append(
            {"type": "Ready", "status": "True", "category": "Required", "message": state.message}
        )
    else:
        conds.append(
            {
                "type": "ConnectionFailed",
                "status": "True",
                "category": "Critical",
                "message": state.message,
            }
        )
    out: dict[str, Any] = {"conditions": conds}
    if state.counts:
        out["inventory"] = dict(state.counts)
    return out


def vm_status(rec: VmProgress, waiting: str = "") -> dict[str, Any]:
    """A VM in Forklift's shape; ``waiting`` says why a queued VM has not started yet."""
    out: dict[str, Any] = {"id": rec.vm_id, "name": rec.vm_name}
    if rec.target_name and rec.target_name != rec.vm_name:
        out["newName"] = rec.target_name
    out["phase"] = rec.phase
    if rec.migration:
        out["migration"] = rec.migration
    if rec.started:
        out["started"] = rec.started
    if rec.completed:
        out["completed"] = rec.completed
    out["pipeline"] = rec.steps
    if rec.warm is not None:
        out["warm"] = warm_status(rec.warm, finished=rec.finished)
    if rec.error:
        out["error"] = rec.error
    if rec.result:
        out["conditions"] = [
            {
                "type": rec.result,
                "status": "True",
                "category": "Advisory",
                "message": f"The VM migration has {rec.result.lower()}.",
            }
        ]
    elif waiting:
        out["conditions"] = [
            {"type": "Waiting", "status": "True", "category": "Advisory", "message": waiting}
        ]
    return out


# a precopy round as status shows it, in this order; ``chunks`` (chunks the round touched) is
# ours, the rest is Forklift's Precopy plus the round's number, bytes and extents
_ROUND_KEYS = ("round", "start", "end", "bytes", "extents", "chunks", "snapshot")


def _round(r: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out = {k: r[k] for k in keys if r.get(k) is not None and r.get(k) != ""}
    for flag in ("full", "final"):  # round 0 copies whole disks; the final one at cutover
        if r.get(flag):
            out[flag] = True
    return out


def warm_status(warm: dict[str, Any], finished: bool = False) -> dict[str, Any]:
    """A warm VM's record (the pipeline's ``VmProgress.warm``) in Forklift's ``plan.Warm``
    shape (successes, failures, consecutiveFailures, nextPrecopyAt, precopies) plus ours: the
    round in flight, the last failure and the cutover.  Only facts the record holds, nothing
    derived from the clock, so an unchanged record gives unchanged status; internal plumbing
    (change ids, the cutover decision's record, epochs, the provider) stays out.  A
    ``finished`` VM (succeeded, failed, canceled) shows no next precopy time.
    """
    precopies = [_round(r, _ROUND_KEYS) for r in warm.get("precopies") or []]
    out: dict[str, Any] = {
        "successes": len(precopies),
        "failures": int(warm.get("failures") or 0),
        "consecutiveFailures": int(warm.get("consecutiveFailures") or 0),
    }
    decision = warm.get("cutover") or {}
    cutting_over = bool(
        decision.get("started")
        or warm.get("powerOffAt")
        or any(r.get("final") for r in precopies)
        or (warm.get("current") or {}).get("final")
    )
    if warm.get("nextPrecopyAt") and not finished and not cutting_over:
        out["nextPrecopyAt"] = warm["nextPrecopyAt"]
    out["precopies"] = precopies
    if warm.get("current"):
        out["roundInFlight"] = _round(warm["current"], ("round", "start", "snapshot"))
    failure = warm.get("lastFailure") or {}
    if failure:
        out["lastFailure"] = {k: failure[k] for k in ("time", "message") if failure.get(k)}
    cutover: dict[str, Any] = {}
    for key, name in (
        ("cutoverBranch", "branch"),
        ("cutoverInstruction", "instruction"),
        ("cutoverAt", "scheduledAt"),
        ("cutoverMessage", "message"),
    ):
        if warm.get(key):
            cutover[name] = warm[key]
    if decision.get("started"):
        cutover["started"] = True
    for key, name in (
        ("powerOffAt", "powerOffAt"),
        ("downtimeSeconds", "downtimeSeconds"),
        ("cutoverBytes", "bytes"),
    ):
        if warm.get(key) is not None and warm.get(key) != "":
            cutover[name] = warm[key]
    if cutover:
        out["cutover"] = cutover
    return out


def _history(rec: MigrationRecord, plan_ns: str, plan_name: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "migration": {"name": rec.migration, "namespace": plan_ns},
        "plan": {"name": plan_name, "namespace": plan_ns},
    }
    if rec.started:
        entry["started"] = rec.started
    if rec.completed:
        entry["completed"] = rec.completed
    if rec.result:
        entry["conditions"] = [
            {"type": rec.result, "status": "True", "category": "Advisory", "message": rec.message}
        ]
    return entry


def _plan_status(snap: Snapshot, d: PlanDecision, errors: list[ManifestError]) -> dict[str, Any]:
    conds = [c.as_dict() for c in d.conditions]
    recs = snap.migrations.get(d.key, [])
    running = [r for r in recs if r.started and not r.completed]
    if running:
        conds.append(
            {
                "type": "Executing",
                "status": "True",
                "category": "Advisory",
                "message": f"Migration {running[0].migration} is running.",
            }
        )
    elif recs and recs[-1].result:
        last = recs[-1]
        conds.append(
            {"type": last.result, "status": "True", "category": "Advisory", "message": last.message}
        )
    for mig, why in sorted(d.refused_migrations.items()):
        conds.append(
            {
                "type": "MigrationRefused",
                "status": "True",
                "category": "Warning",
                "message": f"Migration {mig} {why}.",
            }
        )
    for mig, why in sorted(d.skipped_migrations.items()):
        conds.append(
            {
                "type": "MigrationWaiting",
                "status": "True",
                "category": "Warning",
                "message": f"Migration {mig} waits: {why}.",
            }
        )
    vms = snap.vms.get(d.key, [])
    waiting = _still_waiting(snap.waiting.get(d.key, {}), vms)
    if waiting and running:
        names = [v.source_name for v in d.vms if v.vm_id in waiting]
        where = " per source host" if d.per_host else ""
        conds.append(
            {
                "type": "VMsWaiting",
                "status": "True",
                "category": "Advisory",
                "message": f"{len(names)} VM(s) wait for a slot: {', '.join(names)}; at most "
                f"{d.max_vm_inflight} VM(s) run at once{where} (controller_max_vm_inflight).",
                "items": names,
            }
        )
    partial = [v for v in vms if v.result == "Failed" and (v.error or {}).get("partialImages")]
    if partial:
        conds.append(_partial_images_condition(partial))
    listed = {v.vm_id for v in d.vms}
    order = {v.vm_id: i for i, v in enumerate(d.vms)}
    shown = sorted((v for v in vms if v.vm_id in listed), key=lambda v: order[v.vm_id])
    migration: dict[str, Any] = {}
    if recs:
        if recs[0].started:
            migration["started"] = recs[0].started
        if not running and recs[-1].completed:
            migration["completed"] = recs[-1].completed
        migration["history"] = [_history(r, d.namespace, d.name) for r in recs]
    migration["vms"] = [vm_status(v, waiting.get(v.vm_id, "")) for v in shown]
    out: dict[str, Any] = {"conditions": conds, "migration": migration}
    flagged = [
        {"id": v.vm_id, "name": v.source_name, "concerns": [dict(c) for c in d.concerns[v.vm_id]]}
        for v in d.vms
        if d.concerns.get(v.vm_id)
    ]
    if flagged:
        out["validation"] = {"vms": flagged}
    return out


def _partial_images_condition(failed: list[VmProgress]) -> dict[str, Any]:
    """Failed VMs keep their partial target disks for resume; the space they hold is said."""
    sizes = {v.vm_name: v.error["partialImages"]["bytes"] for v in failed}
    total = sum(sizes.values())
    listed = ", ".join(f"{name} ({n / 1024**2:.0f} MB)" for name, n in sizes.items())
    return {
        "type": "PartialImagesKept",
        "status": "True",
        "category": "Warning",
        "message": f"{len(failed)} failed VM(s) keep {total / 1024**2:.0f} MB of partial target "
        f"disks for resume: {listed}. A new Migration resumes them; one that lists them in "
        "spec.cancel removes them and frees the space.",
        "items": list(sizes),
        "bytes": total,
    }


def _still_waiting(waiting: dict[str, str], vms: list[VmProgress]) -> dict[str, str]:
    """The reasons of VMs that are still Pending: one that took its slot a moment ago is not."""
    pending = {v.vm_id for v in vms if v.phase == "Pending" and not v.result}
    return {vm_id: why for vm_id, why in waiting.items() if vm_id in pending}


def _migration_status(snap: Snapshot, m, errors: list[ManifestError]) -> dict[str, Any]:
    conds = _error_conditions(errors) if errors else []
    plan_key = f"{m.spec.plan.namespace or m.namespace}/{m.spec.plan.name}"
    rec = next((r for r in snap.migrations.get(plan_key, []) if r.migration == m.name), None)
    decision = next((d for d in snap.decisions if d.key == plan_key), None)
    out: dict[str, Any] = {}
    refused = decision.refused_migrations.get(m.name) if decision else None
    if rec is None and refused:
        conds.append(
            {"type": "Refused", "status": "True", "category": "Critical", "message": f"{refused}."}
        )
    elif rec is None:
        why = decision.skipped_migrations.get(m.name) if decision else None
        if not errors:
            conds.append(
                {
                    "type": "Pending",
                    "status": "True",
                    "category": "Advisory",
                    "message": f"Not started: {why or 'waiting for the next pass'}.",
                }
            )
    else:
        if rec.started:
            out["started"] = rec.started
        if rec.completed:
            out["completed"] = rec.completed
            conds.append(
                {
                    "type": rec.result,
                    "status": "True",
                    "category": "Advisory",
                    "message": rec.message,
                }
            )
        else:
            conds.append(
                {
                    "type": "Running",
                    "status": "True",
                    "category": "Advisory",
                    "message": "The migration is running.",
                }
            )
        # the plan's VM order, not the store's: the store's order moves on every update
        order = {v.vm_id: i for i, v in enumerate(decision.vms)} if decision else {}
        vms = sorted(
            (v for v in snap.vms.get(plan_key, []) if v.migration == m.name),
            key=lambda v: order.get(v.vm_id, len(order)),
        )
        waiting = _still_waiting(snap.waiting.get(plan_key, {}), vms)
        out["vms"] = [vm_status(v, waiting.get(v.vm_id, "")) for v in vms]
    out["conditions"] = conds
    return out


def plan_summary(snap: Snapshot, key: str) -> str:
    """``3/3 VMs Completed`` or ``1/3 VMs Completed, 1 CopyDisks, 1 Pending``."""
    vms = snap.vms.get(key, [])
    listed = {v.vm_id for d in snap.decisions if d.key == key for v in d.vms}
    phases: dict[str, int] = {}
    for v in vms:
        if v.vm_id in listed:
            phases[v.phase] = phases.get(v.phase, 0) + 1
    done = phases.pop("Completed", 0)
    rest = [f"{n} {p}" for p, n in sorted(phases.items())]
    pending = len(listed) - done - sum(phases.values())
    if pending:
        rest.append(f"{pending} not started")
    summary = ", ".join([f"{done}/{len(listed)} VMs Completed", *rest])
    recs = snap.migrations.get(key, [])
    if recs:
        last = recs[-1]
        summary += f"; migration {last.migration} {last.result or 'Running'}"
    return summary


SUBJECT_MAX = 100  # characters: a commit subject stays one readable line


def commit_message(old: dict[str, str], new: dict[str, str], snap: Snapshot) -> str:
    """A deterministic message: a short subject (one plan's summary, or counts) and a body
    with each changed plan's summary and every changed status file."""
    changed = sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
    names = [p.removeprefix(f"{STATUS_DIR}/").removesuffix(".yaml") for p in changed]
    plans = [n.removeprefix("plan/") for n in names if n.startswith("plan/")]
    summaries = [f"plan {k}: {plan_summary(snap, k)}" for k in plans]
    if len(plans) == 1:
        head = f"status: {summaries[0]}"
        if len(head) > SUBJECT_MAX:
            head = head[: SUBJECT_MAX - 3] + "..."
    elif plans:
        head = f"status: {len(plans)} plan(s), {len(names) - len(plans)} other object(s) updated"
    else:
        head = f"status: {len(names)} object(s) updated"
    body = [f"- {line}" for line in summaries] if len(plans) > 1 else []
    if body:
        body.append("")
    body += [f"- {n}" for n in names]
    return head + "\n\n" + "\n".join(body)
