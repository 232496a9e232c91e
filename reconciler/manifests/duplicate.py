"""Duplicate a Plan, as MTV's console does: the same VMs, maps and hooks under a new name.

For moving VMs to another namespace or editing an archived plan (an archived plan is read-only).
The new Plan is written beside the old one with a ruamel round trip of the old document, so
comments and key order come along; ``archived`` is dropped (the copy is a live plan), and
references that relied on the old plan's namespace keep naming it when the copy moves.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from reconciler.manifests.config import RepoConfig
from reconciler.manifests.loader import load_repo

_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "ownerReferences")


class DuplicateError(Exception):
    """The plan cannot be duplicated as asked; the message says why."""


@dataclass(frozen=True)
class Duplicate:
    path: Path  # the new file
    namespace: str
    name: str


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-flow a user's long line
    return yaml


def duplicate_plan(
    root: Path,
    plan: str,
    name: str,
    namespace: str | None = None,
    target_namespace: str | None = None,
    config: RepoConfig | None = None,
) -> Duplicate:
    """Write the copy of ``plan`` (``name`` or ``namespace/name``) named ``name``; returns
    where. Raises :class:`DuplicateError` when the plan is not found or the name is taken."""
    desired = load_repo(root, config or RepoConfig())
    plans = desired.of("Plan")
    ns, _, plan_name = plan.rpartition("/")
    found = [m for (pns, pname), m in plans.items() if pname == plan_name and (not ns or pns == ns)]
    if not found:
        raise DuplicateError(f"no Plan {plan} in {root}")
    if len(found) > 1:
        where = ", ".join(f"{m.namespace}/{m.name}" for m in found)
        raise DuplicateError(f"Plan {plan} is in several namespaces ({where}): give NS/NAME")
    old = found[0]
    new_ns = namespace or old.namespace
    if (new_ns, name) in plans:
        taken = plans[(new_ns, name)].location
        raise DuplicateError(f"a Plan {new_ns}/{name} exists already ({taken})")
    source = root / old.location.file
    yaml = _yaml()
    docs = list(yaml.load_all(source.read_text()))
    doc = next(
        d
        for d in docs
        if isinstance(d, CommentedMap)
        and d.get("kind") == "Plan"
        and (d.get("metadata") or {}).get("name") == old.name
        and ((d.get("metadata") or {}).get("namespace") or old.namespace) == old.namespace
    )
    new = copy.deepcopy(doc)
    meta = new["metadata"]
    meta["name"] = name
    if namespace or "namespace" in meta:
        meta["namespace"] = new_ns
    for key in _SERVER_FIELDS:
        meta.pop(key, None)
    spec = new["spec"]
    spec.pop("archived", None)
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if new_ns != old.namespace:
        _pin_namespaces(spec, old.namespace)
    path = source.with_name(f"{name}.yaml")
    if path.exists():
        raise DuplicateError(f"{path} exists already: choose another name")
    out = io.StringIO()
    yaml.dump(new, out)
    text = out.getvalue()
    if not text.startswith(("#", "---", "apiVersion")):
        text = text.lstrip()
    path.write_text(text)
    return Duplicate(path, new_ns, name)


def _pin_namespaces(spec: CommentedMap, namespace: str) -> None:
    """References without a namespace meant the old plan's: say so, now that the copy lives
    in another namespace."""
    refs = []
    provider = spec.get("provider") or {}
    refs += [provider.get("source"), provider.get("destination")]
    maps = spec.get("map") or {}
    refs += [maps.get("network"), maps.get("storage"), spec.get("transferNetwork")]
    for vm in spec.get("vms") or []:
        refs += [h.get("hook") for h in (vm.get("hooks") or []) if isinstance(h, dict)]
    for ref in refs:
        if isinstance(ref, CommentedMap) and not ref.get("namespace"):
            ref["namespace"] = namespace
