"""``mtv-gitops plan``: what a pass would do, described without doing any of it."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.daemon.observe import (
    close_all,
    destination_targets,
    observe,
    observe_change_tracking,
)
from reconciler.daemon.validate import validate_inventories
from reconciler.manifests.config import load_config
from reconciler.manifests.loader import load_repo
from reconciler.manifests.references import check_references
from reconciler.planner.planner import PlanProgress, decide
from reconciler.progress.store import ProgressStore
from reconciler.secrets.resolver import SecretResolver, plaintext_secrets
from reconciler.targets.local import LocalTarget
from reconciler.validation.service import Validator

GIB = 1024**3


@dataclass
class DryRun:
    lines: list[str] = field(default_factory=list)
    problems: int = 0


def dry_run(root: Path, state_dir: Path, cluster: Path, secrets: SecretResolver) -> DryRun:
    out = DryRun()
    config, cerrs = load_config(root)
    desired = load_repo(root, config)
    ref_errors = check_references(desired)
    secrets.plaintext = plaintext_secrets(desired)
    for e in cerrs + desired.errors:
        out.lines.append(f"error {e}")
    out.problems += len(cerrs) + len(desired.errors)
    target = LocalTarget(cluster)
    progress: dict[str, PlanProgress] = {}
    db = state_dir / "progress.db"
    if db.exists():
        store = ProgressStore(db)
        for ns, name in desired.of("Plan"):
            key = f"{ns}/{name}"
            progress[key] = PlanProgress(store.vms(key), store.migrations(key))
        store.close()
    destinations = destination_targets(desired, secrets, target)
    connections, states, observed = observe(desired, secrets, target, None, destinations)
    try:
        with tempfile.TemporaryDirectory() as scratch:  # a dry run keeps no records
            store = ProgressStore(Path(scratch) / "validation.db")
            validator = Validator(store, config.validation.timeoutSeconds)
            try:
                rules = validate_inventories(desired, connections, observed, validator, root)
                observe_change_tracking(desired, connections, observed)
            finally:
                validator.close()
                store.close()
        decisions = decide(desired, ref_errors, observed, progress)
    finally:
        close_all(connections)
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
        records = {v.vm_id: v for v in progress.get(d.key, PlanProgress()).vms}
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
