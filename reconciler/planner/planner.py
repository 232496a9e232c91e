"""Turn desired state, observed inventory and recorded progress into per-plan decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.inventory.model import VM, Inventory
from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired, Manifest
from reconciler.manifests.references import resolve
from reconciler.planner.model import Condition, DiskPlan, NicPlan, PlanDecision, VmPlan
from reconciler.planner.naming import dns1123_name, unique_name
from reconciler.planner.schedule import controller_settings
from reconciler.progress.store import MigrationRecord, VmProgress
from reconciler.sources import Capabilities
from reconciler.validation.service import FAILED_ID


@dataclass
class Observed:
    """What the pass saw outside git: inventories (or why not) and names taken on the target."""

    inventories: Mapping[tuple[str, str], Inventory | str] = field(default_factory=dict)
    target_vm_names: Mapping[str, set[str]] = field(default_factory=dict)
    # provider -> VM id -> the concerns the validation rules raised
    concerns: Mapping[tuple[str, str], Mapping[str, tuple[dict, ...]]] = field(default_factory=dict)
    # destination provider -> why its target cannot be used (no token, unreachable ...)
    destination_errors: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # provider -> VM id -> disk key -> changed block tracking on (read for warm plans' VMs)
    disk_change_tracking: Mapping[tuple[str, str], Mapping[str, Mapping[str, bool]]] = field(
        default_factory=dict
    )
    # provider type -> what its source plugin can do (the installed plugins' answers)
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict)


@dataclass
class PlanProgress:
    vms: list[VmProgress] = field(default_factory=list)
    migrations: list[MigrationRecord] = field(default_factory=list)


def decide(
    desired: Desired,
    ref_errors: list[ManifestError],
    observed: Observed,
    progress: Mapping[str, PlanProgress],
) -> list[PlanDecision]:
    """One decision per valid Plan, in a stable order."""
    return [
        _decide_plan(plan, desired, ref_errors, observed, progress.get(_k(plan), PlanProgress()))
        for _, plan in sorted(desired.of("Plan").items())
    ]


def _k(m: Manifest) -> str:
    return f"{m.namespace}/{m.name}"


def _decide_plan(
    plan: Manifest,
    desired: Desired,
    ref_errors: list[ManifestError],
    observed: Observed,
    pp: PlanProgress,
) -> PlanDecision:
    spec = plan.spec
    d = PlanDecision(plan.namespace, plan.name)
    own = [e for e in ref_errors if e.obj == plan.ref]
    if own:
        d.conditions.append(
            Condition("RefNotValid", "True", "Critical", "; ".join(str(e) for e in own))
        )
        return _with_ready(d)
    src_key = resolve(spec.provider.source, plan)
    d.source = src_key
    controller = controller_settings(desired, plan.namespace)
    d.max_vm_inflight = controller.controller_max_vm_inflight
    provider = desired.get("Provider", *src_key)
    if spec.warm:
        d.warm = True
        d.precopy_interval = controller.controller_precopy_interval * 60.0
        why = _warm_refused(provider, observed.capabilities)
        if why:
            d.conditions.append(
                Condition(
                    "WarmNotSupported",
                    "True",
                    "Critical",
                    f"{why}; set spec.warm: false to run this plan cold",
                )
            )
    d.per_host = (
        provider is not None
        and observed.capabilities.get(provider.spec.type, Capabilities()).inflight_per_host
    )
    d.skip_conversion = _conversion_skipped(plan, provider, observed.capabilities)
    inv = observed.inventories.get(src_key)
    if not isinstance(inv, Inventory):
        why = inv if isinstance(inv, str) else "inventory not read yet"
        d.conditions.append(
            Condition(
                "SourceProviderNotReady",
                "True",
                "Critical",
                f"source provider {src_key[0]}/{src_key[1]}: {why}",
            )
        )
        return _with_ready(d)
    d.destination = resolve(spec.provider.destination, plan)
    why = observed.destination_errors.get(d.destination)
    if why:
        d.conditions.append(
            Condition(
                "DestinationProviderNotReady",
                "True",
                "Critical",
                f"destination provider {d.destination[0]}/{d.destination[1]}: {why}",
            )
        )
        return _with_ready(d)
    nmap = desired.get("NetworkMap", *resolve(spec.map.network, plan))
    smap = desired.get("StorageMap", *resolve(spec.map.storage, plan))
    assert nmap is not None and smap is not None  # guaranteed by the reference check
    d.conditions += _unresolved_map_sources(nmap, smap, inv, src_key)
    recorded = {v.vm_id: v for v in pp.vms}
    taken = set(observed.target_vm_names.get(spec.targetNamespace, set()))
    ours = {v.target_name for v in pp.vms if v.target_name}
    taken -= ours
    not_found, dup, unmapped_net, unmapped_sto, renamed = [], [], [], [], []
    critical, warned = [], []
    no_cbt: list[str] = []
    rule_concerns = observed.concerns.get(src_key, {})
    not_validated: list[str] = []
    seen: set[str] = set()
    for entry in spec.vms:
        vm = inv.find_vm(entry.id, entry.name)
        if vm is None:
            not_found.append(entry.label())
            continue
        if vm.id in seen:
            dup.append(vm.name)
            continue
        seen.add(vm.id)
        for c in vm.concerns:
            if c.get("category") == "Critical":
                d.vm_errors[vm.id] = f"{c.get('label')}: {c.get('assessment')}"
        found = rule_concerns.get(vm.id, ())
        if found:
            d.concerns[vm.id] = found
        if any(c.get("id") == FAILED_ID for c in found):
            not_validated.append(vm.name)
        for category, into in (("Critical", critical), ("Warning", warned)):
            ids = sorted(
                {
                    c.get("id") or c.get("label", "")
                    for c in found
                    if c.get("category") == category and c.get("id") != FAILED_ID
                }
            )
            if ids:
                into.append(f"{vm.name} ({', '.join(ids)})")
        if spec.warm and vm.change_tracking is False:
            no_cbt.append(vm.name)
        elif spec.warm:
            tracked = observed.disk_change_tracking.get(src_key, {}).get(vm.id, {})
            off = [d.key for d in vm.disks if tracked.get(d.key) is False]
            if off:
                no_cbt.append(f"{vm.name} (disk {', '.join(off)})")
        nics, missing_net = _nics(vm, nmap, inv, spec.targetNamespace)
        disks_, missing_sto = _disks(vm, smap, inv)
        unmapped_net += [f"{vm.name}: {n}" for n in missing_net]
        unmapped_sto += [f"{vm.name}: {s}" for s in missing_sto]
        prior = recorded.get(vm.id)
        if prior and prior.target_name:
            target = prior.target_name
        else:
            target = unique_name(dns1123_name(vm.name), taken | ours, vm.id)
            ours.add(target)
        if target != vm.name:
            why = "" if dns1123_name(vm.name) != vm.name else " (name already taken)"
            renamed.append(f"{vm.name} -> {target}{why}")
        d.vms.append(_vm_plan(plan, vm, target, nics, disks_, entry))
    for ctype, items, msg in (
        (
            "VMChangeTrackingDisabled",
            no_cbt,
            "warm migration needs changed block tracking; enable CBT on these VMs (and their "
            "disks) on the source, or run the plan cold",
        ),
        (
            "VMValidationFailed",
            not_validated,
            "VMs whose validation failed (a rule errors, conflicts or overruns its deadline on "
            "them; read each VM's concerns and fix the rules)",
        ),
        ("VMNotFound", not_found, "VMs not found in the source inventory"),
        ("DuplicateVM", dup, "VMs listed more than once"),
        ("VMNetworksNotMapped", unmapped_net, "VM networks not mapped by the NetworkMap"),
        ("VMStorageNotMapped", unmapped_sto, "VM storage not mapped by the StorageMap"),
    ):
        if items:
            text = f"{msg}: {', '.join(items)}"
            d.conditions.append(Condition(ctype, "True", "Critical", text, items=tuple(items)))
    if d.vm_errors:
        names = sorted(v.source_name for v in d.vms if v.vm_id in d.vm_errors)
        d.conditions.append(
            Condition(
                "VMSourceNotValid",
                "True",
                "Critical",
                "VMs whose source cannot be read: "
                + "; ".join(
                    f"{v.source_name}: {d.vm_errors[v.vm_id]}"
                    for v in d.vms
                    if v.vm_id in d.vm_errors
                ),
                items=tuple(names),
            )
        )
    for ctype, category, items, msg in (
        (
            "VMCriticalConcerns",
            "Critical",
            critical,
            "VMs with critical concerns from the "
            "validation rules (fix them on the source or take the VMs out of the plan)",
        ),
        (
            "VMWarningConcerns",
            "Warning",
            warned,
            "VMs with warnings from the validation rules "
            "(the migration may proceed; read each VM's concerns)",
        ),
    ):
        if items:
            text = f"{msg}: {'; '.join(items)}"
            d.conditions.append(Condition(ctype, "True", category, text, items=tuple(items)))
    if renamed:
        d.conditions.append(
            Condition(
                "VMNamesChanged",
                "True",
                "Warning",
                "VMs will have other names on the target (Kubernetes needs DNS-1123 names, "
                "unique in the namespace): " + ", ".join(renamed),
                items=tuple(renamed),
            )
        )
    missing = _deleted_on_target(d, pp, observed, spec.targetNamespace)
    if missing:
        d.conditions.append(
            Condition(
                "TargetVMMissing",
                "True",
                "Warning",
                "VirtualMachines deleted on the target after their migration completed: "
                + ", ".join(missing)
                + ". mtv-gitops does not re-create a completed migration (its disks may be "
                "gone or in use); to migrate such a VM again, put it in a new Plan",
                items=tuple(missing),
            )
        )
    _with_ready(d)
    _choose_migration(d, plan, desired, pp)
    if d.archived:
        d.conditions.append(
            Condition(
                "Archived",
                "True",
                "Advisory",
                "The migration plan is archived: read-only, its temporary objects removed; "
                "migrated VMs stay.",
            )
        )
    return d


# ConvertGuest for sources whose guests already run on KVM: done by having nothing to do, and
# said so (not "skipped", which reads as work left undone)
NOT_NEEDED = "not needed: the guest already runs on KVM (virtio); disks are copied as they are"


def _conversion_skipped(
    plan: Manifest, source: Manifest | None, capabilities: Mapping[str, Capabilities]
) -> str:
    """Why the plan's guests are not converted (virt-v2v), or "" when they are."""
    if plan.spec.skipGuestConversion:
        return "the Plan sets spec.skipGuestConversion: true (its guests are prepared for KVM)"
    kind = source.spec.type if source is not None else ""
    if not capabilities.get(kind, Capabilities()).guest_conversion:
        return NOT_NEEDED
    return ""


def _warm_refused(source: Manifest | None, capabilities: Mapping[str, Capabilities]) -> str:
    """Why warm migration cannot run from this source provider ("" when it can): it needs a
    source whose plugin declares snapshots and changed block tracking (the capability
    ``warm``); either target copies round by round."""
    if source is None or capabilities.get(source.spec.type, Capabilities()).warm:
        return ""
    able = ", ".join(sorted(t for t, c in capabilities.items() if c.warm)) or "none installed"
    return (
        f"warm migration is built for sources whose plugin can take snapshots and track "
        f"changed blocks ({able}), not for {source.spec.type}"
    )


def _deleted_on_target(
    d: PlanDecision, pp: PlanProgress, observed: Observed, namespace: str
) -> list[str]:
    """``ns/name`` of the VMs this plan migrated that the target no longer has."""
    if namespace not in observed.target_vm_names:
        return []  # the target was not read this pass
    present = observed.target_vm_names[namespace]
    listed = {v.vm_id for v in d.vms}
    return sorted(
        f"{namespace}/{v.target_name}"
        for v in pp.vms
        if v.result == "Succeeded"
        and v.target_name
        and v.vm_id in listed
        and v.target_name not in present
    )


def _with_ready(d: PlanDecision) -> PlanDecision:
    if d.ready:
        d.conditions.insert(
            0, Condition("Ready", "True", "Required", "The migration plan is ready.")
        )
    return d


def _nics(
    vm: VM, nmap: Manifest, inv: Inventory, target_namespace: str
) -> tuple[list[NicPlan], list[str]]:
    out, missing = [], []
    for nic in vm.nics:
        net = inv.find_network(id=nic.network) or inv.find_network(name=nic.network)
        nets = [net] if net else []
        if net and net.parent and (up := inv.find_network(id=net.parent)):
            nets.append(up)  # the NIC's own network first, then the one it is part of
        pair = None
        for cand in [*nets, None] if nets else [None]:
            for p in nmap.spec.map:
                src = p.source
                if (src.id and cand and src.id == cand.id) or (src.id and src.id == nic.network):
                    pair = p
                elif not src.id and src.name and cand and src.name == cand.name:
                    pair = p
                if pair:
                    break
            if pair:
                break
        if pair is None:
            missing.append(net.name if net else nic.network)
            continue
        dest = pair.destination
        nad = ""
        if dest.type == "multus":
            # Forklift writes path.Join(namespace, name): no namespace means the VM's own
            nad = f"{dest.namespace or target_namespace}/{dest.name}"
        out.append(
            NicPlan(nic.name, nic.mac, kubevirt_nic_model(nic.model), nic.network, dest.type, nad)
        )
    return out, missing


KUBEVIRT_NIC_MODELS = {"e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139", "pcnet": "pcnet"}


def kubevirt_nic_model(source_model: str) -> str:
    """Emulated models KubeVirt has keep their name; everything else (vmxnet3...) -> virtio."""
    return KUBEVIRT_NIC_MODELS.get(source_model.lower().replace("virtual", ""), "virtio")


def _disks(vm: VM, smap: Manifest, inv: Inventory) -> tuple[list[tuple], list[str]]:
    out, missing = [], []
    fallback = inv.find_storage(id=inv.default_storage) if inv.default_storage else None
    for disk in vm.disks:
        sto = inv.find_storage(id=disk.storage) or inv.find_storage(name=disk.storage)
        pair = _storage_pair(smap, disk.storage, sto)
        if pair is None and fallback is not None:
            pair = _storage_pair(smap, fallback.id, fallback)
        if pair is None:
            missing.append(sto.name if sto else disk.storage)
            continue
        out.append((disk, pair.destination))
    return out, missing


def _storage_pair(smap: Manifest, storage_id: str, sto):
    for p in smap.spec.map:
        if p.source.id and p.source.id in (storage_id, sto.id if sto else None):
            return p
        if not p.source.id and sto is not None and p.source.name == sto.name:
            return p
    return None


def _vm_plan(plan: Manifest, vm: VM, target: str, nics, disks_, entry) -> VmPlan:
    labels = {
        "plan": plan.name,
        "vmID": _label_value(vm.id),
        "app.kubernetes.io/managed-by": "mtv-gitops",
    }
    dplans = tuple(
        DiskPlan(
            key=disk.key,
            capacity=disk.capacity,
            pvc_name=f"{target[:55]}-disk-{i}",
            storage_class=dest.storageClass,
            access_mode=dest.accessMode or "",  # "": the storage class's default (target)
            volume_mode=dest.volumeMode or "",
            bus=disk.bus if disk.bus in ("virtio", "sata", "scsi") else "virtio",
        )
        for i, (disk, dest) in enumerate(disks_)
    )
    hooks = tuple(
        (h.step, f"{h.hook.namespace or plan.namespace}/{h.hook.name}") for h in entry.hooks
    )
    return VmPlan(
        vm_id=vm.id,
        source_name=vm.name,
        target_name=target,
        namespace=plan.spec.targetNamespace,
        cpus=vm.cpus,
        cores_per_socket=vm.cores_per_socket,
        memory_mb=vm.memory_mb,
        firmware=vm.firmware,
        power_state=vm.power_state,
        guest_os=vm.guest_os,
        disks=dplans,
        nics=tuple(nics),
        labels=labels,
        hooks=hooks,
        host=vm.host,
    )


def _label_value(value: str) -> str:
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return clean.strip("-_.") or "vm"


REFUSED_ARCHIVED = (
    "refused: Plan {plan} is archived (spec.archived: true) and read-only; to migrate its VMs "
    "again, duplicate it (mtv-gitops plan duplicate REPO {plan} --name NEW) and run the copy"
)


def _choose_migration(d: PlanDecision, plan: Manifest, desired: Desired, pp: PlanProgress) -> None:
    """One Migration per Plan at a time; a new one re-runs only what has not succeeded."""
    migs = {
        m.name: m
        for m in desired.of("Migration").values()
        if resolve(m.spec.plan, m) == (plan.namespace, plan.name)
    }
    records = {r.migration: r for r in pp.migrations}
    running = [r for r in pp.migrations if r.started and not r.completed]
    candidates = [r.migration for r in running] + sorted(n for n in migs if n not in records)
    if plan.spec.archived:
        d.archived = True
        for name in candidates:
            if name in migs:
                d.refused_migrations[name] = REFUSED_ARCHIVED.format(plan=plan.name)
        return
    for name in candidates:
        if name not in migs:
            # the Migration was deleted while running: cancel what it still had
            d.migration = name
            d.canceled_vms = [v.vm_id for v in pp.vms if v.migration == name and not v.finished]
            return
        if not d.ready:
            d.skipped_migrations[name] = "the plan is not ready"
            continue
        mig = migs[name]
        d.cutover = mig.spec.cutover
        d.migration_file = mig.location.file
        d.migration_namespace = mig.namespace
        done = {v.vm_id for v in pp.vms if v.result == "Succeeded"}
        cancel = {c.id or "" for c in mig.spec.cancel} | {c.name or "" for c in mig.spec.cancel}
        d.migration = name
        for vm in d.vms:
            if vm.vm_id in done:
                continue
            if vm.vm_id in cancel or vm.source_name in cancel:
                d.canceled_vms.append(vm.vm_id)
            else:
                d.run_vms.append(vm.vm_id)
        for other in candidates:
            if other != name and other not in d.skipped_migrations:
                d.skipped_migrations[other] = f"waiting for Migration {name} of the same plan"
        return


def _unresolved_map_sources(
    nmap: Manifest, smap: Manifest, inv: Inventory, src_key: tuple[str, str]
) -> list[Condition]:
    """Map entries whose source (by id or by name) the provider does not have, named in a
    Warning: MTV would hold the whole plan; here a stale or mistyped entry only warns, because
    a VM whose own network or storage is left unmapped already stops the plan (Critical)."""
    out = []
    for ctype, mp, find, what in (
        ("SourceNetworkNotValid", nmap, inv.find_network, "networks"),
        ("SourceStorageNotValid", smap, inv.find_storage, "storages"),
    ):
        missing = [
            f"{'id' if p.source.id else 'name'} {p.source.label()}"
            for p in mp.spec.map
            if getattr(p.source, "type", None) != "pod" and find(p.source.id, p.source.name) is None
        ]
        if missing:
            out.append(
                Condition(
                    ctype,
                    "True",
                    "Warning",
                    f"{mp.ref} ({mp.location}): source {what} not found in the "
                    f"inventory of {src_key[0]}/{src_key[1]}: {', '.join(missing)}",
                    items=tuple(missing),
                )
            )
    return out
