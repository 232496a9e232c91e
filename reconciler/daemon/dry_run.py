"""``mtv-gitops plan``: what a pass would do, described without doing any of it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.daemon.observe import close_all
from reconciler.daemon.sense import sense
from reconciler.manifests.loader import Desired
from reconciler.planner.planner import PlanProgress
from reconciler.progress.db import Database
from reconciler.progress.pipeline import PipelineStore
from reconciler.progress.store import ProgressStore
from reconciler.secrets.resolver import SecretResolver
from reconciler.targets.local import LocalTarget
from reconciler.validation.service import Validator

GIB = 1024**3


@dataclass
class DryRun:
    lines: list[str] = field(default_factory=list)
    problems: int = 0


def dry_run(root: Path, state_dir: Path, cluster: Path, secrets: SecretResolver) -> DryRun:
    """Sense as a pass does (the same step), then describe the decisions instead of acting."""
    out = DryRun()
    db = state_dir / "progress.db"

    def progress(desired: Desired) -> dict[str, PlanProgress]:
        if not db.exists():
            return {}
        pipelines = PipelineStore(Database(db))  # only the VMs' and Migrations' records
        try:
            return {
                key: PlanProgress(pipelines.vms(key), pipelines.migrations(key))
                for key in (f"{ns}/{name}" for ns, name in desired.of("Plan"))
            }
        finally:
            pipelines.close()

    with tempfile.TemporaryDirectory() as scratch:  # a dry run keeps no records
        store = ProgressStore(Path(scratch) / "validation.db")
        validator = Validator(store)
        try:
            local = LocalTarget(cluster)
            seen = sense(root, secrets=secrets, local=local, validator=validator, progress=progress)
        finally:
            validator.close()
            store.close()
    close_all(seen.connections)
    rules, states, decisions, progress_of = seen.rules, seen.states, seen.decisions, seen.progress
    for e in seen.desired.errors:
        out.lines.append(f"error {e}")
    out.problems += len(seen.desired.errors)
    for ptype, st in rules.items():
        custom = (
            f", {len(st.get('customFiles', []))} file(s) from the repo"
            if st.get("customFiles")
            else ""
        )
        out.lines.append(f"Rules {ptype}: version {st['rulesVersion']} ({st['inUse']}{custom})")
        for e in st.get("errors", []):
            out.lines.append(f"  error {e}")
        for w in st.get("warnings", []):
            out.lines.append(f"  warning {w}")
        out.problems += len(st.get("errors", []))
    for (ns, name), st in sorted(states.items()):
        mark = "ready" if st.ready else "NOT READY"
        out.lines.append(f"Provider {ns}/{name}: {mark} — {st.message}")
    for d in decisions:
        out.lines.append("")
        out.lines.append(f"Plan {d.key}: {'ready' if d.ready else 'NOT READY'}")
        for c in d.conditions:
            if c.type != "Ready":
                out.lines.append(f"  {c.category} {c.type}: {c.message}")
        out.problems += not d.ready
        if not d.migration:
            waiting = "; ".join(f"{m}: {w}" for m, w in d.skipped_migrations.items())
            out.lines.append(f"  no Migration to run{' (' + waiting + ')' if waiting else ''}")
        else:
            where = " per source host" if d.per_host else ""
            out.lines.append(
                f"  Migration {d.migration} would run {len(d.run_vms)} VM(s), at most "
                f"{d.max_vm_inflight} at once{where} (controller_max_vm_inflight)"
            )
        records = {v.vm_id: v for v in progress_of.get(d.key, PlanProgress()).vms}
        for vm in d.vms:
            for c in d.concerns.get(vm.vm_id, ()):
                cid = f" [{c['id']}]" if c.get("id") else ""
                out.lines.append(
                    f"  ! {vm.source_name}: {c['category']}{cid} {c['label']}: {c['assessment']}"
                )
            if vm.vm_id not in d.run_vms:
                rec = records.get(vm.vm_id)
                if vm.vm_id in d.canceled_vms:
                    state = "would be canceled"
                elif rec is not None and rec.result:
                    state = f"{rec.result} in Migration {rec.migration}"
                else:
                    state = "waits for a Migration"
                out.lines.append(f"  - {vm.source_name} ({vm.target_name}): {state}; nothing to do")
                continue
            power = "power off" if vm.power_state == "On" else "leave off (already off)"
            out.lines.append(
                f"  - {vm.source_name} -> VirtualMachine {vm.namespace}/{vm.target_name}: "
                f"{power}; {vm.cpus} vCPU, {vm.memory_mb} MiB, {vm.firmware}"
            )
            for disk in vm.disks:
                out.lines.append(
                    f"      copy {disk.key} ({disk.capacity / GIB:.2f} GiB) -> PVC {disk.pvc_name} "
                    f"[{disk.storage_class or 'default class'}, "
                    f"{disk.access_mode or 'class default access'}, "
                    f"{disk.volume_mode or 'class default mode'}]"
                )
            for nic in vm.nics:
                dest = "pod network" if nic.dest_type == "pod" else nic.nad or nic.dest_type
                out.lines.append(f"      NIC {nic.mac or '(no MAC)'} -> {dest}")
    if not decisions:
        out.lines.append("No plans.")
    return out
