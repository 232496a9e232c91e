"""The read-only status page the daemon serves at ``/`` on ``--health-port``.

Plans with their conditions, VMs with their phase, a progress bar per disk being copied (rate
and time left while it runs), warm rounds and the cutover branch to merge, validation
concerns.  It refreshes itself every few seconds and has no buttons: every change goes through
git.  It reads the progress store (records, and what the last pass noted of each plan) and
this process's own copy progress, never a provider or git.  Every string is HTML-escaped and
every secret value the reconciler knows is redacted, whatever record it slipped into.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from reconciler.progress.store import ProgressStore, VmProgress

PAGE_KEY = "page.plans"  # kv: what the last pass noted of each plan (conditions, concerns)
REFRESH_SECONDS = 5
REDACTED = "<redacted>"
MIB = 1024 * 1024

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .3rem} h2{font-size:1.1rem;margin:0 0 .5rem}
.meta{color:#5b6473;margin:0 0 1rem} section.plan{background:#fff;border:1px solid #d8dce3;
border-radius:6px;padding:1rem;margin:0 0 1rem} ul.conditions{margin:.2rem 0 .8rem;padding:0;
list-style:none} ul.conditions li{margin:.15rem 0} .Critical,.Error{color:#b3261e}
.Warning{color:#8a5a00} table{border-collapse:collapse;width:100%} th,td{text-align:left;
padding:.3rem .5rem;border-top:1px solid #e6e9ee;vertical-align:top;font-size:.92rem}
progress{width:9rem} .disk{white-space:nowrap} .concern{font-size:.85rem}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60}m" if s >= 3600 else f"{s // 60}m {s % 60}s"


def note_plans(store: ProgressStore, plans: list[dict[str, Any]]) -> None:
    """What the page shows of each plan beside the records: written by each pass."""
    store.set(PAGE_KEY, json.dumps(plans, sort_keys=True))


def render(
    store: ProgressStore | None,
    disks: dict[tuple[str, str, str], tuple[int, float, int, float | None]],
    role: str,
    secrets: Iterable[str] = (),
) -> str:
    """The page; *disks* are the copies in flight, (plan, VM name, disk) -> (bytes done,
    bytes per second, total bytes, seconds left)."""
    body: list[str] = []
    if store is None:
        body.append("<p class='empty'>No progress store open: this replica stands by.</p>")
    else:
        try:
            plans = json.loads(store.get(PAGE_KEY) or "[]")
        except ValueError:
            plans = []
        if not plans:
            body.append("<p class='empty'>No plan yet: push a Plan and a Migration.</p>")
        for plan in plans:
            body.append(_plan(store, plan, disks))
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_SECONDS}'>"
        "<title>mtv-gitops status</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>mtv-gitops</h1>"
        f"<p class='meta'>Replica: <span id='role'>{_e(role)}</span>. Read-only: every change "
        f"goes through git. Refreshes every {REFRESH_SECONDS} s.</p>"
        + "".join(body)
        + "</body></html>"
    )
    return redact(page, secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    """*text* without any secret value, raw or HTML-escaped."""
    for value in sorted(set(secrets), key=len, reverse=True):
        for form in {value, html.escape(value, quote=True)}:
            if form and form in text:
                text = text.replace(form, html.escape(REDACTED))
    return text


def _plan(store: ProgressStore, plan: dict[str, Any], disks) -> str:
    key = plan.get("plan", "")
    out = [f"<section class='plan' data-plan='{_e(key)}'><h2>Plan {_e(key)}</h2>"]
    conditions = list(plan.get("conditions") or [])
    migrations = store.migrations(key)
    if migrations:
        last = migrations[-1]
        state = "Executing" if not last.completed else last.result
        conditions.append(
            {
                "type": state,
                "category": "Advisory",
                "message": f"Migration {last.migration}: {last.message or state}",
            }
        )
    out.append("<ul class='conditions'>")
    for c in conditions:
        cat = c.get("category", "")
        out.append(
            f"<li class='condition {_e(cat)}' data-type='{_e(c.get('type', ''))}'>"
            f"<b>{_e(c.get('type', ''))}</b> ({_e(cat)}): {_e(c.get('message', ''))}</li>"
        )
    out.append("</ul>")
    records = {v.vm_id: v for v in store.vms(key)}
    concerns = plan.get("concerns") or {}
    out.append(
        "<table class='vms'><thead><tr><th>VM</th><th>Phase</th><th>Disks</th>"
        "<th>Warm</th><th>Validation</th></tr></thead><tbody>"
    )
    for vm in plan.get("vms") or []:
        rec = records.get(vm.get("id", ""))
        out.append(_vm(key, vm, rec, concerns.get(vm.get("id", ""), []), disks))
    out.append("</tbody></table></section>")
    return "".join(out)


def _vm(plan: str, vm: dict[str, str], rec: VmProgress | None, concerns, disks) -> str:
    name = vm.get("name") or (rec.vm_name if rec else "")
    phase = rec.phase if rec else "Not started"
    cells = [
        f"<td class='name'>{_e(name)}</td>",
        f"<td class='phase'>{_e(phase)}"
        + (f" ({_e(rec.result)})" if rec and rec.result else "")
        + _error(rec)
        + "</td>",
        f"<td class='disks'>{_disks(plan, name, rec, disks)}</td>",
        f"<td class='warm'>{_warm(rec)}</td>",
        "<td class='concerns'>"
        + "".join(
            f"<div class='concern {_e(c.get('category', ''))}'>{_e(c.get('category', ''))}: "
            f"{_e(c.get('label', ''))}</div>"
            for c in concerns
        )
        + "</td>",
    ]
    vm_id = vm.get("id", "")
    return f"<tr class='vm' data-vm-id='{_e(vm_id)}' data-phase='{_e(phase)}'>{''.join(cells)}</tr>"


def _error(rec: VmProgress | None) -> str:
    if rec is None or not rec.error or not rec.error.get("reasons"):
        return ""
    reasons = "; ".join(str(r) for r in rec.error.get("reasons", []))
    return f"<div class='error Error'>{_e(rec.error.get('phase', ''))}: {_e(reasons)}</div>"


def _disks(plan: str, name: str, rec: VmProgress | None, disks) -> str:
    if rec is None:
        return ""
    out = []
    for step in rec.steps:
        if step.get("name") not in ("CopyDisks", "CopyFinalDelta"):
            continue
        for task in step.get("tasks") or []:
            prog = task.get("progress") or {}
            total, done = int(prog.get("total") or 0), int(prog.get("completed") or 0)
            live = disks.get((plan, name, task.get("name", "")))
            rate = eta = ""
            if live is not None:
                nbytes, bps, size, left = live
                total = max(total, size // MIB)
                done = max(done, nbytes // MIB)
                rate = f" <span class='rate'>{_e(_size(bps))}/s</span>"
                eta = f" <span class='eta'>{_e(_duration(left))} left</span>"
            pct = 100.0 * done / total if total else 0.0
            out.append(
                f"<div class='disk' data-disk='{_e(task.get('name', ''))}'>{_e(task.get('name'))} "
                f"<progress max='{total}' value='{done}'></progress> "
                f"<span class='pct'>{pct:.0f}%</span>{rate}{eta}</div>"
            )
    return "".join(out)


def _warm(rec: VmProgress | None) -> str:
    if rec is None or rec.warm is None:
        return ""
    w = rec.warm
    parts = [f"<span class='rounds'>{len(w.get('precopies') or [])} round(s)</span>"]
    if w.get("nextPrecopyAt") and not rec.result:
        parts.append(f"next at {_e(w['nextPrecopyAt'])}")
    if w.get("cutoverBranch"):
        parts.append(f"merge <code class='branch'>{_e(w['cutoverBranch'])}</code> to cut over")
    if w.get("downtimeSeconds") is not None:
        parts.append(f"downtime {_e(w['downtimeSeconds'])} s")
    return "; ".join(parts)
