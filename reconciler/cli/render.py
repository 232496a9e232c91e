"""Rich rendering for the CLI: progress bars while copying, tables for status."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from reconciler.progress.events import DiskProgress, Event, Kind

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class RichReporter:
    """Progress bars per disk and one line per step transition.

    Called from the threads of VMs that run at once: rich's Progress and Console lock
    themselves; the bar of each disk is looked up (or added) under our own lock.
    """

    def __init__(self, con: Console | None = None) -> None:
        self.console = con or console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}  # (namespace, PVC name) -> its bar
        self._lock = threading.Lock()

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        """An event subscriber: a line per step that ended, a bar per disk being copied."""
        if event.kind is Kind.STEP:
            self.step(event)
        elif event.kind is Kind.DISK and event.progress is not None:
            self.disk_progress(event, event.progress)

    def step(self, event: Event) -> None:
        if event.outcome == "Running":
            return
        colour = {"Completed": "green", "Skipped": "yellow", "Failed": "red"}.get(
            event.outcome, "white"
        )
        text = f"  {event.target_name}: {event.phase} [{colour}]{event.outcome}[/]"
        if event.message:
            text += f" — {escape(event.message)}"
        self.progress.console.print(text)

    def disk_progress(self, event: Event, p: DiskProgress) -> None:
        with self._lock:
            tid = self.tasks.get((event.namespace, event.disk))
            if tid is None:
                tid = self.progress.add_task(event.disk, total=p.total)
                self.tasks[(event.namespace, event.disk)] = tid
        self.progress.update(tid, completed=p.bytes_done)


def inventory_tables(inv: Any) -> list[Table]:
    """A source provider's VMs, then its networks and storage."""
    vms = Table(title=f"VMs ({len(inv.vms)})", title_justify="left")
    for col in ("Name", "Id", "Power", "CPUs", "Memory MiB", "Disks", "NICs", "Host"):
        vms.add_column(col)
    for vm in inv.vms:
        size = sum(d.capacity for d in vm.disks) / 1024**3
        vms.add_row(
            escape(vm.name),
            escape(vm.id),
            vm.power_state,
            str(vm.cpus),
            str(vm.memory_mb),
            f"{len(vm.disks)} ({size:.1f} GiB)",
            str(len(vm.nics)),
            escape(vm.host),
        )
    other = Table(title="Networks and storage", title_justify="left")
    for col in ("Kind", "Name", "Id"):
        other.add_column(col)
    for kind, items in (("network", inv.networks), ("storage", inv.storages)):
        for item in items:
            other.add_row(kind, escape(item.name), escape(item.id))
    return [vms, other]


def status_tables(docs: list[dict[str, Any]]) -> list[Table]:
    """Plans, then VMs, from status documents in Forklift's shape."""
    plans = Table(title="Plans", title_justify="left")
    for col in ("Plan", "Ready", "State", "VMs done", "Conditions"):
        plans.add_column(col)
    vms = Table(title="VMs", title_justify="left")
    for col in ("Plan", "VM", "Target name", "Phase", "Progress", "Result / error"):
        vms.add_column(col)
    concerns = Table(title="Concerns (validation rules)", title_justify="left")
    for col in ("Plan", "VM", "Category", "Concern", "What to do"):
        concerns.add_column(col)
    warm = Table(title="Warm migration", title_justify="left")
    for col in ("Plan", "VM", "Rounds", "Last round", "Next precopy", "Cutover"):
        warm.add_column(col, overflow="fold")  # a branch to merge is never cut short
    for doc in docs:
        if doc.get("kind") != "Plan":
            continue
        meta, status = doc["metadata"], doc.get("status", {})
        conds = status.get("conditions", [])
        ready = any(c["type"] == "Ready" for c in conds)
        state = next(
            (
                c["type"]
                for c in conds
                if c["type"] in ("Executing", "Succeeded", "Failed", "Canceled")
            ),
            "Idle",
        )
        entries = status.get("migration", {}).get("vms", [])
        done = sum(1 for v in entries if v.get("phase") == "Completed")
        problems = "; ".join(
            f"{c['type']}: {c['message']}"
            for c in conds
            if c["category"] in ("Critical", "Warning")
        )
        name = f"{meta['namespace']}/{meta['name']}"
        plans.add_row(
            name,
            "[green]yes[/]" if ready else "[red]no[/]",
            state,
            f"{done}/{len(entries)}" if entries else "-",
            escape(problems),
        )
        for v in entries:
            vms.add_row(
                name,
                escape(v.get("name", "")),
                escape(v.get("newName", v.get("name", ""))),
                escape(v.get("phase", "")),
                _progress(v),
                _result(v),
            )
            if isinstance(v.get("warm"), dict):
                w = v["warm"]
                warm.add_row(
                    name,
                    escape(v.get("name", "")),
                    _rounds(w),
                    _last_round(w),
                    escape(str(w.get("nextPrecopyAt") or "-")),
                    _cutover(w, next((c["type"] for c in v.get("conditions", [])), "")),
                )
        for v in status.get("validation", {}).get("vms", []):
            for c in v.get("concerns", []):
                label = c.get("label", "") + (f" ({c['id']})" if c.get("id") else "")
                concerns.add_row(
                    name,
                    escape(v.get("name", "")),
                    _CATEGORY_STYLE.get(c.get("category", ""), "") + escape(c.get("category", "")),
                    escape(label),
                    escape(c.get("assessment", "")),
                )
    return (
        [plans, vms]
        + ([warm] if warm.row_count else [])
        + ([concerns] if concerns.row_count else [])
    )


_CATEGORY_STYLE = {"Critical": "[red]", "Warning": "[yellow]", "Information": "[cyan]"}


def _progress(vm: dict[str, Any]) -> str:
    for step in vm.get("pipeline", []):
        if step.get("name") == "CopyDisks" and "progress" in step:
            p = step["progress"]
            pct = 100 * p["completed"] / p["total"] if p.get("total") else 100
            extra = step.get("annotations", {})
            rate = f" {extra['rate']} eta {extra['eta']}" if "rate" in extra else ""
            return f"{pct:.0f}% of {p['total']} MB{rate}"
    return "-"


def _result(vm: dict[str, Any]) -> str:
    if vm.get("error"):
        err = vm["error"]
        return (
            f"[red]{escape(str(err.get('phase')))}: {escape('; '.join(err.get('reasons', [])))}[/]"
        )
    conds = vm.get("conditions", [])
    return conds[0]["type"] if conds else ""


def human_bytes(n: int | float) -> str:
    """``512 B``, ``192 KiB``, ``1.5 MiB``: binary units, at most one decimal."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _text(value: Any) -> str:
    """Anything from a status document as plain text in a table cell (never read as markup)."""
    return escape(str(value))


def _rounds(w: dict[str, Any]) -> str:
    """Rounds done and failed; the last failure while failures run in a row."""
    text = f"{_text(w.get('successes', 0))} done"
    failures = w.get("failures", 0)
    if failures:
        text += f", [red]{_text(failures)} failed[/]"
        row = w.get("consecutiveFailures", 0)
        if row:
            text += f" ({_text(row)} in a row)"
    failure = w.get("lastFailure") or {}
    if w.get("consecutiveFailures") and failure.get("message"):
        text += f"\n[red]{escape(str(failure['message']))}[/]"
    return text


def _last_round(w: dict[str, Any]) -> str:
    """The last round done (end, extents, bytes) and the round in flight, if any."""
    lines = []
    rounds = w.get("precopies") or []
    if rounds:
        r = rounds[-1]
        label = "final" if r.get("final") else f"#{_text(r.get('round', len(rounds)))}"
        lines.append(
            f"{label} ended {_text(r.get('end', '?'))}: {_text(r.get('extents', 0))} extent(s), "
            f"{human_bytes(r.get('bytes', 0))}"
        )
    current = w.get("roundInFlight")
    if current:
        label = "final round" if current.get("final") else f"round {_text(current.get('round'))}"
        lines.append(f"{label} copying since {_text(current.get('start', '?'))}")
    return "\n".join(lines) or "-"


def _cutover(w: dict[str, Any], result: str = "") -> str:
    """Where the cutover is: branch to merge, scheduled, under way, or done with its downtime;
    ``result`` is the VM's, so a cutover a failed or canceled VM left half done says so."""
    c = w.get("cutover") or {}
    if "downtimeSeconds" in c:
        return (
            f"[green]done[/]: downtime {float(c['downtimeSeconds']):.1f} s, "
            f"{human_bytes(c.get('bytes', 0))} copied"
        )
    if c.get("started") or c.get("powerOffAt"):
        since = f": source off since {escape(str(c['powerOffAt']))}" if c.get("powerOffAt") else ""
        if result in ("Failed", "Canceled"):
            return f"[red]stopped ({result.lower()})[/]{since}"
        return f"[yellow]in progress[/]{since}"
    if c.get("scheduledAt"):
        return f"scheduled at {escape(str(c['scheduledAt']))}"
    if c.get("branch"):
        return f"merge branch {escape(str(c['branch']))}"
    return escape(str(c.get("instruction") or c.get("message") or "-"))
