"""The validation step of a pass: every VM of every source a plan uses, through the Rego rules.

Runs between observing and deciding, so the planner sees each VM's concerns. Rules come from the
repo's ``rules/<provider>/`` on top of the shipped defaults; only VMs whose document or rules
changed since their last validation are evaluated.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from reconciler.manifests.loader import Desired
from reconciler.planner.planner import Observed
from reconciler.sources import SourceConnection, SourceError
from reconciler.validation.ruleset import rule_types
from reconciler.validation.service import Validator

VALIDATION_KEY = "metrics.validation"  # kv: provider type -> [VMs validated, seconds]

log = logging.getLogger(__name__)
Key = tuple[str, str]


def validate_inventories(
    desired: Desired,
    connections: dict[Key, SourceConnection | str],
    observed: Observed,
    validator: Validator,
    root: Path,
) -> dict[str, dict[str, Any]]:
    """Fill ``observed.concerns``; return what status shows of each provider type's rules."""
    concerns: dict[Key, dict[str, tuple[dict, ...]]] = {}
    prepared: set[str] = set()
    for key, conn in sorted(connections.items()):
        inv = observed.inventories.get(key)
        provider = desired.get("Provider", *key)
        if isinstance(conn, str) or isinstance(inv, str) or inv is None or provider is None:
            continue
        ptype = provider.spec.type
        if ptype not in rule_types():
            continue
        if ptype not in prepared:
            state = validator.prepare(ptype, root)
            prepared.add(ptype)
            for e in state.errors:
                log.warning("validation rules for %s rejected: %s", ptype, e)
        docs: dict[str, dict[str, Any] | str] = {}
        for vm in inv.vms:
            try:
                docs[vm.id] = conn.validation_input(vm.id)
            except SourceError as exc:
                docs[vm.id] = str(exc)
        began = time.monotonic()
        verdicts = validator.validate(f"{key[0]}/{key[1]}", ptype, docs)
        fresh = sum(v.fresh for v in verdicts.values())
        if fresh:
            _note_validation(validator, ptype, fresh, time.monotonic() - began)
        log.info("validated %d VM(s) of %s/%s (%d unchanged)", fresh, *key, len(verdicts) - fresh)
        concerns[key] = {vm_id: v.concerns for vm_id, v in verdicts.items()}
    observed.concerns = concerns
    states = validator.states()
    return {t: states[t].as_dict() for t in sorted(prepared) if t in states}


def _note_validation(validator: Validator, ptype: str, vms: int, seconds: float) -> None:
    """Add to the running totals the metrics serve (``mtv_gitops_validation_seconds``),
    kept in the progress store so they survive a restart."""
    try:
        totals = json.loads(validator.store.get(VALIDATION_KEY) or "{}")
    except ValueError:
        totals = {}
    n, s = totals.get(ptype, [0, 0.0])
    totals[ptype] = [n + vms, round(s + seconds, 6)]
    validator.store.set(VALIDATION_KEY, json.dumps(totals, sort_keys=True))
