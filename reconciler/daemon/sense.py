"""Sense: everything a pass knows before it acts, gathered one way for the pass and the dry run.

Read the repo (config, manifests, references), observe (source providers' inventories and the
targets), validate every VM with the rules, read what the progress store holds, and decide.
:meth:`Reconciler.run_pass` then acts on the decisions; ``mtv-gitops plan`` describes them.
Nothing here changes the world: it connects and reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.daemon.observe import (
    Key,
    Sources,
    close_all,
    destination_targets,
    observe,
    observe_change_tracking,
)
from reconciler.daemon.validate import validate_inventories
from reconciler.manifests.config import RepoConfig, load_config
from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired, load_repo
from reconciler.manifests.references import check_references
from reconciler.planner.model import PlanDecision
from reconciler.planner.planner import Observed, PlanProgress, decide
from reconciler.secrets.resolver import SecretResolver, plaintext_secrets
from reconciler.sources import SourceConnection
from reconciler.status.projection import ProviderState
from reconciler.targets.base import Target
from reconciler.validation.service import Validator

ProgressOf = Callable[[Desired], dict[str, PlanProgress]]


@dataclass
class Sensed:
    """What a pass saw and decided, before acting."""

    root: Path
    config: RepoConfig
    desired: Desired  # config errors first among ``desired.errors``
    ref_errors: list[ManifestError]
    destinations: dict[Key, Target | str]
    connections: dict[Key, SourceConnection | str]
    states: dict[Key, ProviderState]
    observed: Observed
    rules: dict[str, dict[str, Any]]  # provider type -> what status shows of its rule set
    progress: dict[str, PlanProgress]
    decisions: list[PlanDecision] = field(default_factory=list)


def read_desired(root: Path) -> tuple[RepoConfig, Desired, list[ManifestError]]:
    """The repo config and manifests at *root* (config errors first), and reference errors."""
    config, config_errors = load_config(root)
    desired = load_repo(root, config)
    desired.errors[:0] = config_errors
    return config, desired, check_references(desired)


def sense(
    root: Path,
    *,
    secrets: SecretResolver,
    local: Target,
    validator: Validator,
    progress: ProgressOf,
    sources: Sources | None = None,
    targets: dict[Key, tuple[str, Target | str]] | None = None,
    also: Callable[[Desired], frozenset[Key]] = lambda desired: frozenset(),
) -> Sensed:
    """Read, observe, validate and decide for the repo checked out at *root*.

    ``sources`` and ``targets`` are the daemon's caches (connections and targets that outlive
    the pass); without ``sources`` the connections are the caller's to close
    (:func:`close_all`), and are closed here if sensing fails.  ``progress`` reads the store's
    records of the desired plans; ``also`` names source providers to connect though no plan
    uses them (a deleted plan's warm VMs, to clean up).
    """
    config, desired, ref_errors = read_desired(root)
    secrets.plaintext = plaintext_secrets(desired)
    destinations = destination_targets(desired, secrets, local, targets)
    connections, states, observed = observe(
        desired, secrets, local, sources, destinations, also=also(desired)
    )
    try:
        validator.eval_timeout = config.validation.timeoutSeconds
        rules = validate_inventories(desired, connections, observed, validator, root)
        observe_change_tracking(desired, connections, observed)
        plans = progress(desired)
        decisions = decide(desired, ref_errors, observed, plans)
    except BaseException:
        if sources is None:
            close_all(connections)
        raise
    return Sensed(
        root,
        config,
        desired,
        ref_errors,
        destinations,
        connections,
        states,
        observed,
        rules,
        plans,
        decisions,
    )
