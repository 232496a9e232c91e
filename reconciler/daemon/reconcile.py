"""One reconcile pass: sync git, sense (read, observe, validate, decide), act, write status.

The VMs' pipelines emit events; the pass's status writer (its own thread) commits status on
transitions and at a throttled pace while work runs, so a slow push never stalls a copy, and
always once more at the end of the pass (in a ``finally``), so a failure in the middle still
leaves a true record.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.daemon.gather import known_secrets
from reconciler.daemon.lifecycle import (
    CLEANED_KEY,
    PLACE_KEY,
    clean_up_plan,
    place_of,
    remember_place,
)
from reconciler.daemon.logs import EventLog
from reconciler.daemon.metrics import plan_uid
from reconciler.daemon.observe import Key, Sources, source_ref
from reconciler.daemon.page import note_plans
from reconciler.daemon.sense import sense
from reconciler.daemon.state_dir import CHECKOUT_DIR, remember_cluster
from reconciler.gitops.checkout import GitCheckout
from reconciler.gitops.cutover import propose_cutover
from reconciler.hooks.inputs import dump, plan_document
from reconciler.hooks.model import Hook, decode_playbook
from reconciler.inventory.store import InventoryStore
from reconciler.manifests.config import RepoConfig
from reconciler.manifests.loader import Desired, load_repo
from reconciler.manifests.references import resolve
from reconciler.pipeline.cold import run_vm
from reconciler.pipeline.phases import now
from reconciler.pipeline.steps import RunContext, cancel_vm, mark_started, start_record
from reconciler.pipeline.warm import (
    abandon_snapshots,
    cancel_paused_vm,
    next_wake,
    run_warm_vm,
)
from reconciler.planner.model import PlanDecision, VmPlan
from reconciler.planner.planner import Observed, PlanProgress, decide
from reconciler.planner.schedule import Job, schedule
from reconciler.progress.events import Event, EventBus, Kind, Subscriber
from reconciler.progress.store import MigrationRecord, PlanLabels, ProgressStore, VmProgress
from reconciler.secrets.resolver import ClusterSecrets, SecretError, SecretResolver
from reconciler.sources import release_disks
from reconciler.status.projection import Snapshot
from reconciler.status.writer import StatusWriter
from reconciler.targets.base import SourceRef, Target, TargetError
from reconciler.targets.destination import in_cluster
from reconciler.targets.kubevirt.manifests import StorageSettings
from reconciler.targets.local import LocalTarget
from reconciler.validation.service import Validator

log = logging.getLogger(__name__)
LAST_READ_KEY = "git.last_read"
LAST_PUSHED_KEY = "git.last_pushed"
# what the last pass that left nothing to do had read (see Reconciler._settled_key)
SETTLED_KEY = "pass.settled"
WAIT_POLL_SECONDS = 0.5  # how soon a queued VM notices a cancel or a shutdown


@dataclass
class PassResult:
    revision: str
    decisions: list[PlanDecision]
    errors: int
    work_left: bool
    failed_vms: int = 0
    status_commits: int = 0
    problems: list[str] = field(default_factory=list)  # what a person must read and fix
    # epoch seconds when a warm VM waiting between precopy rounds (or for its scheduled
    # cutover) has work again; None when none waits
    wake_at: float | None = None
    # True when nothing the pass reads changed since a pass that left nothing to do: it
    # sensed nothing (no provider asked) and rendered nothing; ``settled`` plans were seen
    unchanged: bool = False
    settled: int = 0

    @property
    def not_ready(self) -> list[str]:
        return [d.key for d in self.decisions if not d.ready]


@dataclass
class Settings:
    """Where things are for one reconciler instance."""

    source: str  # the user's clone, bare repo or remote URL
    state_dir: Path
    cluster: Path | None = None
    branch: str | None = None
    secrets: SecretResolver = field(default_factory=SecretResolver)
    # told every event of the pipeline (the CLI's progress bars, the daemon's metrics)
    reporter: Subscriber | None = None
    verify: bool | None = None  # None: the repo config decides


class Reconciler:
    """Holds the long-lived parts (checkout, store, target) across passes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ProgressStore(settings.state_dir / "progress.db")
        self.checkout = GitCheckout(
            settings.source,
            settings.state_dir / CHECKOUT_DIR,
            settings.branch,
            last_pushed=self.store.get(LAST_PUSHED_KEY) or None,
            on_pushed=lambda sha: self.store.set(LAST_PUSHED_KEY, sha),
        )
        cluster = settings.cluster or settings.state_dir / "cluster"
        remember_cluster(settings.state_dir, cluster)
        # the embedded target: destination Providers with an empty url, outside a cluster
        self.local = LocalTarget(cluster)
        # destination Provider -> (what it was made from, its target), kept across passes
        self._targets: dict[Key, tuple[str, Target | str]] = {}
        self._plan_targets: dict[Key, Target | str] = {}  # this pass's
        self.validator = Validator(self.store)
        if in_cluster() and settings.secrets.cluster is None:
            # in a pod, Providers' secrets are the cluster's own Secrets (the file and the
            # environment still override them key by key)
            settings.secrets.cluster = _cluster_secrets()
        # source connections live across passes, so inventories refresh incrementally
        self.sources = Sources()
        self.inventories = InventoryStore(settings.state_dir / "inventory.db")
        self.cancel = threading.Event()  # shutdown
        # what the VMs' pipelines tell: status, progress bars and metrics subscribe here
        self.events = EventBus()
        self._running: dict[str, str] = {}  # plan key -> the Migration running it now
        self._secret_values: set[str] = set()
        self._secrets_read = ""  # the desired revision they were read at
        self._event_log = EventLog()
        self.events.subscribe(self._report)
        # VMs run in worker threads; this guards the three below.  Reentrant because stop()
        # runs in a signal handler, which may interrupt the main thread while it holds it.
        self._lock = threading.RLock()
        self._halts: dict[tuple[str, str], threading.Event] = {}  # VM in flight -> stops its copy
        self._cancel_requests: set[tuple[str, str]] = set()  # (plan key, VM id)
        self._waiting: dict[str, dict[str, str]] = {}  # plan key -> queued VM id -> why

    def stop(self) -> None:
        """Shut down soon: running copies stop at a durable point and resume next start."""
        self.cancel.set()
        with self._lock:
            halts = list(self._halts.values())
        for halt in halts:
            halt.set()

    def _report(self, event: Event) -> None:
        """Pass events to the settings' reporter, whichever it is now (a demo swaps it), and
        to the log, each with the Migration that runs its plan."""
        migration = self._running.get(event.plan, "")
        if migration and not event.migration:
            event = replace(event, migration=migration)
        self._event_log(event)
        reporter = self.settings.reporter
        if reporter is not None:
            reporter(event)

    def waiting(self) -> dict[str, dict[str, str]]:
        """Queued VMs and why they wait, per plan: a copy for the status writer."""
        with self._lock:
            return {plan: dict(vms) for plan, vms in self._waiting.items()}

    def notice_cancels(
        self, decisions: list[PlanDecision], config: RepoConfig, read: str | None = None
    ) -> None:
        """Read the Migrations again from the checkout (fresh after each status push): a VM
        added to ``spec.cancel``, or a deleted Migration, stops the VM now, not next pass.

        Nothing is read when no Migration runs, or when the desired state is still the
        revision *read* (the pass's own): with a thousand plans a re-read costs seconds."""
        if not any(d.migration for d in decisions):
            return
        if read is not None and self.checkout.desired_revision() == read:
            return
        desired = load_repo(self.checkout.path, config)
        found: set[tuple[str, str]] = set()
        for d in decisions:
            if not d.migration:
                continue
            migs = [
                m
                for m in desired.of("Migration").values()
                if m.name == d.migration and resolve(m.spec.plan, m) == _split(d.key)
            ]
            if not migs:
                found |= {(d.key, vm_id) for vm_id in d.run_vms}
                continue
            for ref in migs[0].spec.cancel:
                for vm in d.vms:
                    if ref.label() in (vm.vm_id, vm.source_name):
                        found.add((d.key, vm.vm_id))
        with self._lock:
            self._cancel_requests |= found
            halts = [h for key, h in self._halts.items() if key in self._cancel_requests]
        for halt in halts:
            halt.set()

    def _canceled(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._cancel_requests

    def close(self) -> None:
        self.sources.close()
        self.inventories.close()
        self.validator.close()
        self.store.close()

    # -- the pass ---------------------------------------------------------------------------

    def run_pass(self) -> PassResult:
        with self._lock:
            self._cancel_requests.clear()  # this pass's decisions already hold known cancels
            self._waiting.clear()
        revision = self.checkout.sync()
        self.store.set(LAST_READ_KEY, revision)
        desired_revision = self.checkout.desired_revision()
        settled = self._settled_key(desired_revision)
        last = _settled_record(self.store.get(SETTLED_KEY))
        if last.get("key") == settled and self._same_target_vms(last.get("targets", {})):
            # nothing it reads changed since a pass that left nothing to do: no provider is
            # asked and nothing rendered; status waiting in the checkout still goes out
            self.checkout.flush_status()
            plans = int(last.get("plans", 0))
            return PassResult(revision, [], 0, False, unchanged=True, settled=plans)
        self.store.set(SETTLED_KEY, "")
        orphans: list[VmProgress] = []

        def deleted_plans(desired: Desired) -> frozenset[Key]:
            orphans.extend(self._deleted_plans_warm_vms(desired))
            return frozenset(k for k in (_provider_key(v) for v in orphans) if k)

        seen = sense(
            self.checkout.path,
            secrets=self.settings.secrets,
            local=self.local,
            validator=self.validator,
            progress=self._progress,
            sources=self.sources,
            targets=self._targets,
            also=deleted_plans,
        )
        config, desired, decisions = seen.config, seen.desired, seen.decisions
        self.checkout.author_name, self.checkout.author_email = (
            config.authorName,
            config.authorEmail,
        )
        self._plan_targets = seen.destinations
        self._label_plans(desired, decisions)
        self._note_for_page(desired, decisions, desired_revision)
        self._abandon(orphans, seen.connections)
        for (ns, name), inv in seen.observed.inventories.items():
            if not isinstance(inv, str):
                self.inventories.save(f"{ns}/{name}", inv)
        view = _StatusView(self, desired_revision, desired, seen.ref_errors, decisions, seen.states)
        view.rules = seen.rules
        view.file_revisions = self.checkout.input_revisions()
        writer = StatusWriter(
            self.checkout,
            view.snapshot,
            config.statusCommitSeconds,
            on_commit=lambda: self.notice_cancels(decisions, config, desired_revision),
        )
        unsubscribe = self.events.subscribe(writer)
        failed = 0
        try:
            writer.start()
            view.deleted_plans = self._clean_up_deleted_plans(desired)
            for d in decisions:
                failed += self._execute(d, seen.connections, config, view)
        finally:
            unsubscribe()
            writer.close()
        after = self._redecide(desired, seen.ref_errors, seen.observed)
        work_left, wake_at = self._work_left(after)
        result = PassResult(
            revision,
            decisions,
            len(desired.errors) + len(seen.ref_errors),
            work_left,
            failed,
            writer.commits,
            self._problems(desired, decisions) + sorted(view.deleted_plans.values()),
            wake_at,
        )
        idle = not (work_left or wake_at is not None or result.errors or result.problems)
        idle = idle and not any(self._migration_open(d) for d in after)
        # only the embedded target is looked at again cheaply (a folder listing) to notice a
        # VM deleted by hand; a pass with a cluster as destination always runs in full
        local_only = all(t is self.local for t in seen.destinations.values())
        if idle and local_only and not self.cancel.is_set():
            record = {
                "key": settled,
                "plans": len(decisions),
                # as the pass leaves them (it may have created VMs)
                "targets": {
                    ns: sorted(self.local.vm_names(ns)) for ns in seen.observed.target_vm_names
                },
            }
            self.store.set(SETTLED_KEY, json.dumps(record, sort_keys=True))
        return result

    def _label_plans(self, desired: Desired, decisions: list[PlanDecision]) -> None:
        """Record what the metrics label each plan with (they read the store, not git)."""
        known = self.store.plan_labels()
        for d in decisions:
            source = desired.get("Provider", *d.source)
            dest = desired.get("Provider", *d.destination)
            labels = PlanLabels(
                d.key,
                plan_uid(d.key),
                # as Forklift labels it (``sourceProvider.Type().String()``): the Provider's
                # spec.type, lowercase, so MTV's dashboards and alerts match
                source.spec.type if source is not None else "",
                "Warm" if d.warm else "Cold",
                "Remote" if dest is not None and dest.spec.url else "Local",
            )
            if known.get(d.key) != labels:
                self.store.put_plan_labels(labels)

    def _note_for_page(self, desired: Desired, decisions: list[PlanDecision], rev: str) -> None:
        """What the status page shows beside the records (it reads the store, never git),
        and the secret values it must never show (read again when the desired state moves)."""
        note_plans(
            self.store,
            [
                {
                    "plan": d.key,
                    "conditions": [c.as_dict() for c in d.conditions],
                    "vms": [{"id": v.vm_id, "name": v.source_name} for v in d.vms],
                    "concerns": {k: [dict(c) for c in v] for k, v in d.concerns.items() if v},
                }
                for d in decisions
            ],
        )
        if self._secrets_read != rev:
            try:
                self._secret_values = known_secrets(desired, self.settings.secrets)
            except Exception as exc:  # noqa: BLE001 - the page shows less, the pass goes on
                log.warning("secret values for the status page not read: %s", exc)
            self._secrets_read = rev

    def known_secrets(self) -> set[str]:
        """Every secret value the last pass could read (the status page redacts them)."""
        return set(self._secret_values)

    def _migration_open(self, d: PlanDecision) -> bool:
        """A decided Migration that has not ended yet (one queued behind another, say)."""
        if not d.migration:
            return False
        rec = self.store.get_migration(d.key, d.migration)
        return rec is None or not rec.completed

    def _same_target_vms(self, seen: dict[str, list[str]]) -> bool:
        """True when the embedded target still holds the VMs a settled pass saw there."""
        try:
            return all(sorted(self.local.vm_names(ns)) == names for ns, names in seen.items())
        except Exception:  # noqa: BLE001 - whatever it is, a full pass says it properly
            return False

    def _settled_key(self, desired_revision: str) -> str:
        """What a pass's outcome depends on besides the providers: the desired state's
        revision, this program's version, where it puts VMs and the secrets it was given.
        A pass that left nothing to do (every plan ready, no VM with work, no warm VM
        waiting, no problem to report) records it; the next pass with the same key has
        nothing to do either."""
        secrets = self.settings.secrets
        facts = [
            desired_revision,
            _version(),
            str(self.local.root),
            repr(self.settings.verify),
            str(secrets.path or ""),
            repr(sorted((k, v) for k, v in secrets.environ.items() if k.startswith("MTV_"))),
            "cluster" if secrets.cluster is not None else "",
        ]
        if secrets.path is not None:
            try:
                facts.append(hashlib.sha256(secrets.path.read_bytes()).hexdigest())
            except OSError as exc:
                facts.append(type(exc).__name__)
        return hashlib.sha256("\0".join(facts).encode()).hexdigest()

    def _deleted_plans_warm_vms(self, desired: Desired) -> list[VmProgress]:
        plans = {f"{ns}/{name}" for ns, name in desired.of("Plan")}
        refused = self._deletion_refused(desired)
        return [
            v for v in self.store.unfinished_warm() if v.plan not in plans and v.plan not in refused
        ]

    def _deletion_refused(self, desired: Desired) -> dict[str, str]:
        """Deleted plans whose Migration still runs (its record open, its file still in the
        repo): nothing of theirs is removed until the run is canceled; why, per plan key."""
        plans = {f"{ns}/{name}" for ns, name in desired.of("Plan")}
        out: dict[str, str] = {}
        for key in sorted(self.store.plans() - plans):
            running = [m for m in self.store.migrations(key) if m.started and not m.completed]
            files = {
                m.name
                for m in desired.of("Migration").values()
                if resolve(m.spec.plan, m) == _split(key)
            }
            for mig in running:
                if mig.migration in files:
                    out[key] = (
                        f"Plan {key} was deleted while its Migration {mig.migration} runs: "
                        "nothing of it is removed until the run is canceled (delete the "
                        "Migration's file too) or the Plan is restored"
                    )
        return out

    def _clean_up_deleted_plans(self, desired: Desired) -> dict[str, str]:
        """Remove what deleted plans left (see :mod:`reconciler.daemon.lifecycle`), then
        forget them; returns the deletions refused or not finished, per plan key, for
        ``status/repo.yaml``."""
        refused = self._deletion_refused(desired)
        plans = {f"{ns}/{name}" for ns, name in desired.of("Plan")}
        for key in sorted(self.store.plans() - plans - set(refused)):
            place = place_of(self.store, key)
            target = self._place_target(place)
            if target is None:
                refused[key] = (
                    f"Plan {key} was deleted; its destination Provider "
                    f"{place.get('destination') or '?'} is gone too, so what it left there "
                    "is not removed"
                )
                continue
            done = clean_up_plan(
                self.store, target, key, place.get("namespace", ""), None, "the Plan was deleted"
            )
            if done.problems:
                refused[key] = f"Plan {key} was deleted; cleanup: " + "; ".join(done.problems)
                continue
            self.store.forget_plan(key)
            self.store.set(PLACE_KEY + key, "")
            self.store.set(CLEANED_KEY + key, "")
        return refused

    def _place_target(self, place: dict[str, str]) -> Target | None:
        dest = place.get("destination", "")
        if dest == "local" or not dest:
            return self.local
        found = self._plan_targets.get(_split(dest))
        return found if found is not None and not isinstance(found, str) else None

    def _archive(self, d: PlanDecision, connections) -> None:
        """An archived plan's temporaries go, once; its migrated VMs and history stay."""
        if self.store.get(CLEANED_KEY + d.key):
            return
        try:
            target = self._target_of(d)
        except TargetError as exc:
            log.warning("archived plan %s not cleaned up: %s", d.key, exc)
            return
        namespace = d.vms[0].namespace if d.vms else place_of(self.store, d.key).get("namespace")
        source = connections.get(d.source)
        done = clean_up_plan(
            self.store, target, d.key, namespace or "", source, "the Plan was archived"
        )
        if done.problems:
            log.warning("archived plan %s: cleanup: %s", d.key, "; ".join(done.problems))
            return
        self.store.set(CLEANED_KEY + d.key, now())

    def _abandon(self, orphans: list[VmProgress], connections) -> None:
        """Warm VMs whose Plan was deleted: remove the snapshots this tool left on them and
        end them Canceled.  Their target disks stay (no plan says where any more)."""
        for rec in orphans:
            key = _provider_key(rec)
            conn = connections.get(key) if key else None
            if isinstance(conn, str):  # unreachable now: tried again next pass
                log.warning(
                    "plan %s deleted; VM %s keeps its snapshots: %s", rec.plan, rec.vm_name, conn
                )
                continue
            if conn is None:
                why = f"Provider {rec.warm.get('provider') or '?'} is gone"
                rec.error = {"cleanup": f"snapshots of mtv-gitops may be left on the VM: {why}"}
                log.warning("plan %s deleted; VM %s: %s", rec.plan, rec.vm_name, why)
            else:
                try:
                    abandon_snapshots(conn, rec.vm_id, rec)
                except Exception as exc:  # noqa: BLE001 - logged; the record still ends
                    rec.error = {"cleanup": f"{type(exc).__name__}: {exc}"}
                    log.warning("plan %s deleted; VM %s: %s", rec.plan, rec.vm_name, exc)
                else:
                    log.info("plan %s deleted: snapshots of VM %s removed", rec.plan, rec.vm_name)
            rec.result, rec.phase, rec.completed = "Canceled", "Canceled", now()
            self.store.put_vm(rec)

    def _work_left(self, decisions: list[PlanDecision]) -> tuple[bool, float | None]:
        """Whether a VM has work now, and the earliest time a waiting warm VM has work: a
        VM paused between precopy rounds is not work until its round (or cutover) is due."""
        work, wakes = False, []
        clock = time.time()
        for d in decisions:
            if not d.migration:
                continue
            for vm_id in d.run_vms:
                rec = self.store.get_vm(d.key, vm_id)
                wake = next_wake(rec, d.cutover) if rec and rec.migration == d.migration else None
                if wake is None or wake <= clock:
                    work = True
                else:
                    wakes.append(wake)
        return work, min(wakes) if wakes else None

    def _target_of(self, d: PlanDecision) -> Target:
        found = self._plan_targets.get(d.destination, self.local)
        if isinstance(found, str):  # the planner holds such plans: not ready
            raise TargetError(found)
        return found

    def _problems(self, desired: Desired, decisions: list[PlanDecision]) -> list[str]:
        out = [f"error {e}" for e in desired.errors]
        for d in decisions:
            for c in d.conditions:
                if c.category == "Critical":
                    out.append(f"plan {d.key} not ready: {c.type}: {c.message}")
            for v in self.store.vms(d.key):
                if v.result == "Failed" and v.migration == d.migration and v.error:
                    reasons = "; ".join(v.error.get("reasons", []))
                    out.append(f"VM {v.vm_name} failed in {v.error.get('phase')}: {reasons}")
        return out

    def _redecide(self, desired: Desired, ref_errors, observed: Observed) -> list[PlanDecision]:
        return decide(desired, ref_errors, observed, self._progress(desired))

    def _progress(self, desired: Desired) -> dict[str, PlanProgress]:
        return {
            f"{ns}/{name}": PlanProgress(
                self.store.vms(f"{ns}/{name}"), self.store.migrations(f"{ns}/{name}")
            )
            for ns, name in desired.of("Plan")
        }

    def _execute(self, d: PlanDecision, connections, config: RepoConfig, view) -> int:
        """Run the decided Migration of one plan; returns how many VMs failed."""
        if d.archived:
            self._archive(d, connections)
            return 0
        if not d.migration:
            return 0
        self._running[d.key] = d.migration
        try:
            return self._execute_migration(d, connections, config, view)
        finally:
            self._running.pop(d.key, None)

    def _execute_migration(self, d: PlanDecision, connections, config: RepoConfig, view) -> int:
        if d.vms:
            local = self._plan_targets.get(d.destination, self.local) is self.local
            destination = "local" if local else "/".join(d.destination)
            remember_place(self.store, d.key, d.vms[0].namespace, destination)
        rec = self.store.get_migration(d.key, d.migration) or MigrationRecord(
            d.key, d.migration, started=now()
        )
        if not rec.started:
            rec.started = now()
        self.store.put_migration(rec)
        # made once, when first needed: it reads the target's storage classes
        context = functools.cache(lambda: self._context(d, connections, config, view))
        for vm_id in d.canceled_vms:
            self._cancel_waiting(d, vm_id, connections, context)
        if d.canceled_vms:
            self.events.emit(Event(Kind.PLAN, d.key, phase="Canceled", outcome="Canceled"))
        failed = 0
        if d.run_vms:
            failed = self._run_vms(d, context())
        if self.cancel.is_set():
            return failed
        results = [self.store.get_vm(d.key, v) for v in d.run_vms + d.canceled_vms]
        if any(r is not None and not r.finished for r in results):
            return failed  # a VM was paused: the Migration goes on next pass
        # every VM this Migration ran, in this process or before a restart: the store knows
        outcomes = [v.result for v in self.store.vms(d.key) if v.migration == d.migration]
        if "Failed" in outcomes:
            rec.result, rec.message = "Failed", f"{outcomes.count('Failed')} VM(s) failed."
        elif "Canceled" in outcomes:
            rec.result, rec.message = "Canceled", f"{outcomes.count('Canceled')} VM(s) canceled."
        else:
            n = outcomes.count("Succeeded")
            rec.result = "Succeeded"
            rec.message = (
                f"{n} VM(s) migrated." if n else "Nothing to migrate: every VM had succeeded."
            )
        rec.completed = now()
        self.store.put_migration(rec)
        self.events.emit(
            Event(Kind.MIGRATION, d.key, phase=d.migration, outcome=rec.result, message=rec.message)
        )
        return failed

    def _context(self, d: PlanDecision, connections, config: RepoConfig, view) -> RunContext:
        """What the pipeline needs to run (or clean up) the plan's VMs in this pass."""
        target = self._target_of(d)
        return RunContext(
            store=self.store,
            source=connections.get(d.source, "no connection to the source provider"),
            target=target,
            plan_key=d.key,
            migration=d.migration,
            streams=config.transfer.streams,
            chunk_size=config.transfer.chunkMiB * 1024 * 1024,
            verify=config.transfer.verify if self.settings.verify is None else self.settings.verify,
            max_bytes_per_second=(config.transfer.maxMiBps or 0) * 1024 * 1024 or None,
            events=self.events,
            parallel_disks=config.transfer.parallelDisks,
            cancel=self.cancel,
            source_ref=self._source_ref(view.desired, d),
            storage=_storage(target, config),
            warm=d.warm,
            precopy_interval=config.warm.precopyIntervalSeconds or d.precopy_interval,
            cutover=d.cutover,
            propose=self._proposer(d) if d.warm else None,
            skip_conversion=d.skip_conversion,
            hooks=_hooks(view.desired, d),
            plan_yml=_plan_yml(view.desired, d),
        )

    def _cancel_waiting(
        self, d: PlanDecision, vm_id: str, connections, context: Callable[[], RunContext]
    ) -> None:
        """Cancel a VM no pass is running: one never started ends Canceled; a warm one waiting
        between rounds also loses its snapshots and its target disks."""
        prior = self.store.get_vm(d.key, vm_id)
        if prior is not None and prior.finished:
            return
        vm = next((v for v in d.vms if v.vm_id == vm_id), None)
        if prior is None:
            if vm is None:
                return
            prior = VmProgress(d.key, vm_id, vm.source_name, d.migration, vm.target_name)
        prior.migration = d.migration
        if prior.warm is not None and prior.started and vm is not None:
            try:
                ctx = context()
            except TargetError as exc:
                prior.error = {"cleanup": f"target disks not removed: {exc}"}
            else:
                cancel_paused_vm(ctx, vm, prior)
                return
        released = False  # abandon_snapshots releases the source's disks too
        if prior.warm and not isinstance(connections.get(d.source, ""), str):
            try:
                abandon_snapshots(connections[d.source], vm_id, prior)
                released = True
            except Exception as exc:  # noqa: BLE001 - said in status; the cancel goes on
                prior.error = {**(prior.error or {}), "cleanup": f"{type(exc).__name__}: {exc}"}
        if prior.started and not released and not isinstance(connections.get(d.source, ""), str):
            _release_source(connections[d.source], vm_id, prior)  # a killed pass's
        prior.result, prior.phase, prior.completed = "Canceled", "Canceled", now()
        self.store.put_vm(prior)

    def _proposer(self, d: PlanDecision) -> Callable[[datetime], tuple[str, str]]:
        """How a warm VM proposes its Migration's cutover: the branch and what status says."""
        namespace = d.migration_namespace or d.namespace

        def propose(when: datetime) -> tuple[str, str]:
            proposal = propose_cutover(
                self.checkout, namespace, d.migration, when, path=d.migration_file or None
            )
            return proposal.branch, proposal.instruction

        return propose

    def _source_ref(self, desired: Desired, d: PlanDecision) -> SourceRef | None:
        provider = desired.get("Provider", *d.source)
        if provider is None:
            return None
        try:
            return source_ref(provider, self.settings.secrets, desired)
        except SecretError:
            return None  # the connection made this pass resolved it; a copy elsewhere says so

    def _run_vms(self, d: PlanDecision, base: RunContext) -> int:
        """Run the plan's VMs in threads, at most ``controller_max_vm_inflight`` at once (per
        source host when the provider counts per host), as MTV does; returns how many failed.

        Every VM gets its record first, so a VM waiting for a slot shows as Pending, with the
        reason in status.  A shutdown starts nothing more and lets running VMs pause.
        """
        vms = {vm.vm_id: vm for vm in d.vms if vm.vm_id in d.run_vms}
        records = {
            vm_id: start_record(base, vm, self.store.get_vm(d.key, vm_id))
            for vm_id, vm in vms.items()
        }
        # a VM that a stopped pass left half-way goes first: its target disks exist already
        queue = sorted(vms, key=lambda vm_id: not records[vm_id].started)
        hosts = len({vm.host for vm in vms.values()}) if d.per_host else 1
        workers = max(1, min(len(vms), d.max_vm_inflight * hosts))
        running: dict[Future, str] = {}
        failed = 0
        try:
            with ThreadPoolExecutor(workers, thread_name_prefix=f"vm-{d.name}") as pool:
                try:
                    while True:
                        for vm_id in [v for v in queue if self._canceled((d.key, v))]:
                            queue.remove(vm_id)
                            if records[vm_id].started:  # a killed pass's: what it made
                                _release_source(base.source, vm_id, records[vm_id])
                            cancel_vm(base, vms[vm_id], records[vm_id])
                        if self.cancel.is_set():
                            queue.clear()  # they stay Pending; the next start runs them
                        for vm_id in self._take_slots(d, base, vms, records, queue, running):
                            ctx = self._vm_context(base, vm_id)
                            run = run_warm_vm if d.warm else run_vm
                            future = pool.submit(run, ctx, vms[vm_id], records[vm_id])
                            running[future] = vm_id
                        if not running:
                            break
                        done, _ = wait(running, WAIT_POLL_SECONDS, return_when=FIRST_COMPLETED)
                        for future in done:
                            del running[future]
                            failed += future.result().result == "Failed"
                except BaseException:
                    self._halt_running(d.key, running)  # the pool waits for them to pause
                    raise
        finally:
            with self._lock:
                self._waiting.pop(d.key, None)
                for key in [k for k in self._halts if k[0] == d.key]:
                    del self._halts[key]
        return failed

    def _take_slots(
        self,
        d: PlanDecision,
        base: RunContext,
        vms: dict[str, VmPlan],
        records: dict[str, VmProgress],
        queue: list[str],
        running: dict[Future, str],
    ) -> tuple[str, ...]:
        """Ask the scheduler which queued VMs start now; returns them, out of the queue.

        In this order a commit from a running VM never shows a VM Pending without its reason:
        the started leave Pending first, then the others get why they wait."""
        plan = schedule(
            [Job(v, vms[v].host) for v in queue],
            [Job(v, vms[v].host) for v in running.values()],
            d.max_vm_inflight,
            d.per_host,
        )
        for vm_id in plan.start:
            queue.remove(vm_id)
            mark_started(base, records[vm_id])
        with self._lock:
            self._waiting[d.key] = plan.waiting
        return plan.start

    def _vm_context(self, base: RunContext, vm_id: str) -> RunContext:
        """A VM's own copy of the plan's context: its halt event, its cancel check."""
        key = (base.plan_key, vm_id)
        halt = threading.Event()
        with self._lock:
            self._halts[key] = halt
        return replace(base, halt=halt, canceled=lambda: self._canceled(key))

    def _halt_running(self, plan_key: str, running: dict[Future, str]) -> None:
        """The pass is failing: VMs not started yet never start, running ones pause."""
        for future in running:
            future.cancel()
        with self._lock:
            halts = [self._halts.get((plan_key, v)) for v in running.values()]
        for halt in halts:
            if halt is not None:
                halt.set()


def _hooks(desired: Desired, d: PlanDecision) -> dict[str, Hook]:
    """The Hooks the plan's VMs name, by ``namespace/name``, their playbooks decoded."""
    out: dict[str, Hook] = {}
    for ref in {ref for vm in d.vms for _, ref in vm.hooks}:
        found = desired.get("Hook", *_split(ref))
        if found is not None:
            spec = found.spec
            out[ref] = Hook(
                namespace=found.namespace,
                name=found.name,
                image=spec.image,
                playbook=decode_playbook(spec.playbook),
                service_account=spec.serviceAccount or "",
                deadline=spec.deadline or 0,
            )
    return out


def _plan_yml(desired: Desired, d: PlanDecision) -> str:
    """The plan's ``plan.yml``, as Forklift gives it to hooks ("" without hooks)."""
    plan = desired.get("Plan", d.namespace, d.name)
    if plan is None or not any(vm.hooks for vm in d.vms):
        return ""
    return dump(plan_document(plan.spec))


def _provider_key(rec: VmProgress) -> Key | None:
    """The source provider a warm record names, as the key observe uses."""
    ns, _, name = ((rec.warm or {}).get("provider") or "").partition("/")
    return (ns, name) if name else None


def _storage(target: Target, config: RepoConfig) -> StorageSettings:
    """How PVCs are sized and moded: the target's storage classes, the repo's overheads."""
    try:
        provisioners, default = target.storage_classes()
    except TargetError as exc:  # e.g. not allowed to list them: the docs' fallback modes
        log.warning("storage classes of %s not read: %s", target.describe(), exc)
        provisioners, default = {}, ""
    return StorageSettings(
        provisioners=provisioners,
        default_class=default,
        filesystem_overhead=config.target.filesystemOverhead,
        overhead_by_class=dict(config.target.filesystemOverheadByStorageClass),
    )


def _cluster_secrets() -> ClusterSecrets:
    """Read Secrets from the cluster this pod runs in, connecting on first use."""
    from reconciler.targets.kubevirt.target import KubevirtTarget

    cluster: list[KubevirtTarget] = []

    def read(namespace: str, name: str) -> dict[str, str] | None:
        if not cluster:
            try:
                cluster.append(KubevirtTarget.in_cluster())
            except TargetError as exc:
                raise SecretError(f"secret {namespace}/{name}: {exc}") from None
        return cluster[0].read_secret(namespace, name)

    return read


def _settled_record(raw: str | None) -> dict:
    try:
        found = json.loads(raw or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@functools.cache
def _version() -> str:
    """This program's version: shipped rules and behaviour change with it."""
    try:
        return importlib.metadata.version("mtv-gitops")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _split(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


class _StatusView:
    """What status is rendered from during a pass: its sensed facts and the store's records."""

    def __init__(self, rec: Reconciler, revision, desired, ref_errors, decisions, states):
        self.rec = rec
        self.revision = revision
        self.desired = desired
        self.ref_errors = ref_errors
        self.decisions = decisions
        self.states = states
        self.rules: dict = {}
        self.file_revisions: dict[str, str] = {}
        self.deleted_plans: dict[str, str] = {}  # plan key -> why what it left stays

    def snapshot(self) -> Snapshot:
        keys = [d.key for d in self.decisions]
        store = self.rec.store
        return Snapshot(
            self.revision,
            self.desired,
            self.ref_errors,
            self.decisions,
            self.states,
            {k: store.vms(k) for k in keys},
            {k: store.migrations(k) for k in keys},
            self.rules,
            self.rec.waiting(),
            self.file_revisions,
            self.deleted_plans,
        )


def _release_source(source: Any, vm_id: str, rec: VmProgress) -> None:
    """What the source made to read a canceled VM's disks (``release_disks``), made by a pass
    that was killed before it could delete it; a failure is said in the record."""
    try:
        release_disks(source, vm_id)
    except Exception as exc:  # noqa: BLE001 - said in status; the cancel goes on
        rec.error = {**(rec.error or {}), "cleanup": f"{type(exc).__name__}: {exc}"}
