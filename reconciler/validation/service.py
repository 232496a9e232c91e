"""The validation service: which rule set is in force per provider type, and each VM's verdict.

- A rule set is compiled once and reused while its files do not change.
- A set that does not compile is rejected with the engine's message and the files that cause it;
  validation goes on with the last good set (kept in the progress store, so a restart keeps it
  too), else with the shipped defaults.
- Each VM records the rules version and digest it was validated with and a digest of its input
  document; a VM is evaluated again only when one of the three changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.progress.store import ProgressStore, ValidationRecord
from reconciler.validation.engine import Engine, RegoPool
from reconciler.validation.projection import Tree, element_keys, input_tree, project
from reconciler.validation.ruleset import (
    RuleFile,
    RuleSet,
    compile_rules,
    engine_notes,
    load_rule_set,
    replaced_notes,
    rewrite_notes,
)

CATEGORIES = ("Critical", "Warning", "Information")
FAILED_ID = "mtv-gitops.validation.failed"
MAX_TIMEOUTS = 3  # a set that overruns on this many VMs in a pass stops evaluating the rest
ERROR_ID = "mtv-gitops.validation.error"


def tidy(text: str) -> str:
    """rego-cpp's multi-line error print, as one readable paragraph."""
    keep = []
    for raw in text.splitlines():
        ln = raw.strip()
        if not ln or not set(ln) - set("~-") or ln == "Errors:" or _INTERNAL.match(ln):
            continue
        keep.append(ln[3:] if ln.startswith("-- ") else ln)
    return " | ".join(dict.fromkeys(keep)) or text.strip()


# rego-cpp's internal node names and pass summaries say nothing to a rule author
_INTERNAL = re.compile(r"^(\w+\$\d+|wellformed_error|Pass \w+ failed with \d+ errors?!)$")
_DEFAULT = re.compile(r"^default\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def _default_clashes(f: RuleFile, others: list[RuleFile]) -> str:
    """Name the `default` rules a file declares again (the engine does not say which)."""
    mine = set(_DEFAULT.findall(f.source))
    hits = [
        f"`default {n}` is already declared in {o.name}"
        for o in others
        for n in sorted(mine & set(_DEFAULT.findall(o.source)))
    ]
    return "; ".join(hits)


@dataclass
class RuleSetState:
    """What status and lint say about one provider type's rules."""

    provider_type: str
    version: Any = None
    digest: str = ""
    in_use: str = "defaults"  # defaults | defaults + repo | last good
    custom_files: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the repo's set was rejected: why
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "rulesVersion": self.version,
            "rulesDigest": self.digest,
            "inUse": self.in_use,
        }
        for key in ("custom_files", "errors", "warnings", "notes"):
            value = getattr(self, key)
            if value:
                d["customFiles" if key == "custom_files" else key] = list(value)
        return d


@dataclass(frozen=True)
class Verdict:
    """What the rules said about one VM."""

    vm_id: str
    concerns: tuple[dict[str, str], ...]
    fresh: bool  # evaluated in this pass (not reused from the store)


def input_digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _file_digests(rs: RuleSet) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.source.encode()).hexdigest()[:16] for f in rs.files}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def normalize_concerns(raw: Any, problems: list[str]) -> list[dict[str, str]]:
    """Concerns in a fixed shape; a malformed one is kept (as a Warning) and reported."""
    out: list[dict[str, str]] = []
    for c in raw if isinstance(raw, list) else []:
        if not isinstance(c, dict):
            problems.append(f"a rule added a concern that is not an object: {c!r}")
            continue
        label = str(c.get("label", "")) or "(no label)"
        category = str(c.get("category", ""))
        fixed = category.strip("<> ").capitalize()
        if fixed not in CATEGORIES:
            problems.append(
                f"concern {label!r} has category {category!r}; expected one of "
                f"{', '.join(CATEGORIES)} (shown as Warning)"
            )
            fixed = "Warning"
        elif fixed != category:
            problems.append(f"concern {label!r} has category {category!r}; write {fixed!r}")
        item = {"category": fixed, "label": label, "assessment": str(c.get("assessment", ""))}
        if c.get("id"):
            item["id"] = str(c["id"])
        out.append(item)
    out.sort(key=lambda c: (CATEGORIES.index(c["category"]), c.get("id", ""), c["label"]))
    return out


class Validator:
    """Long-lived: one engine process per provider type, the sets in force, the records."""

    def __init__(
        self, store: ProgressStore, eval_timeout: float = 5.0, defaults: Path | None = None
    ) -> None:
        self.store = store
        self._eval_timeout = eval_timeout
        self.defaults = defaults
        self._engines: dict[str, RegoPool] = {}
        self._active: dict[str, tuple[RuleSet, RuleSetState]] = {}
        self._states: dict[str, RuleSetState] = {}
        self._rejected: dict[str, tuple[str, RuleSetState]] = {}  # type -> (digest, state)
        self._trees: dict[str, Cut] = {}  # what the rules in force read of a document

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        self._active.clear()

    @property
    def eval_timeout(self) -> float:
        return self._eval_timeout

    @eval_timeout.setter
    def eval_timeout(self, value: float) -> None:
        self._eval_timeout = value
        for pool in self._engines.values():
            pool.eval_timeout = value

    def _engine(self, provider_type: str) -> RegoPool:
        if provider_type not in self._engines:
            self._engines[provider_type] = RegoPool(eval_timeout=self.eval_timeout)
        return self._engines[provider_type]

    # -- rule sets --------------------------------------------------------------------------

    def prepare(self, provider_type: str, repo_root: Path | None) -> RuleSetState:
        """Put the repo's rules for ``provider_type`` in force, or say why not."""
        rs = load_rule_set(provider_type, repo_root, self.defaults)
        digest = rs.digest
        active = self._active.get(provider_type)
        if active and active[0].digest == digest and not rs.problems:
            self._rejected.pop(provider_type, None)
            return active[1]
        rejected = self._rejected.get(provider_type)
        if rejected and rejected[0] == digest and provider_type in self._active:
            return rejected[1]  # the same broken files as last pass: same verdict, no recompiles
        state = RuleSetState(provider_type, custom_files=[f.name for f in rs.custom_files])
        state.in_use = "defaults + repo" if rs.custom_files else "defaults"
        state.notes += replaced_notes(rs)
        for f in rs.custom_files:
            state.warnings += engine_notes(f)
            state.notes += rewrite_notes(f)
        engine = self._engine(provider_type)
        result = None
        if not rs.problems:
            result = compile_rules(engine, rs)
        if result is not None and result.ok:
            self._put_in_force(rs, state, result.result)
            return state
        state.errors += rs.problems or diagnose(rs, engine, tidy(result.error if result else ""))
        fallback, how = self._last_good(provider_type)
        built = compile_rules(engine, fallback)
        if not built.ok:  # the shipped defaults are tested; this means a broken install
            state.errors.append(f"the default rules do not compile: {tidy(built.error)}")
            self._active.pop(provider_type, None)
            self._states[provider_type] = state
            return state
        state.in_use = how
        state.version, state.digest = built.result, fallback.digest
        self._active[provider_type] = (fallback, state)
        self._trees[provider_type] = _cut(fallback)
        self._states[provider_type] = state
        self._rejected[provider_type] = (digest, state)
        return state

    def _put_in_force(self, rs: RuleSet, state: RuleSetState, version: Any) -> None:
        t = rs.provider_type
        state.version, state.digest = version, rs.digest
        files = _file_digests(rs)
        seen_key = f"validation.{t}.version.{version}"
        seen = json.loads(self.store.get(seen_key) or "null")
        if seen is None:
            self.store.set(seen_key, json.dumps({"digest": rs.digest, "files": files}))
        elif seen["digest"] != rs.digest:
            changed = sorted(
                n for n in set(files) | set(seen["files"]) if files.get(n) != seen["files"].get(n)
            )
            state.warnings.append(
                f"the {t} rules changed without a rules_version bump (still {version}; changed: "
                f"{', '.join(changed)}). VMs are validated again anyway; run `mtv-gitops rules "
                f"bump REPO --provider {t}` so the version says so"
            )
        self.store.set(
            f"validation.{t}.good",
            json.dumps({"modules": rs.modules, "custom": [f.name for f in rs.custom_files]}),
        )
        self._active[t] = (rs, state)
        self._trees[t] = _cut(rs)
        self._states[t] = state

    def _last_good(self, provider_type: str) -> tuple[RuleSet, str]:
        saved = json.loads(self.store.get(f"validation.{provider_type}.good") or "null")
        if saved:
            custom = set(saved["custom"])
            rs = RuleSet(provider_type)
            rs.files = [
                RuleFile(name, Path(name), source, name in custom)
                for name, source in saved["modules"]
            ]
            return rs, "last good"
        return load_rule_set(provider_type, None, self.defaults), "defaults"

    def state(self, provider_type: str) -> RuleSetState | None:
        return self._states.get(provider_type)

    def states(self) -> dict[str, RuleSetState]:
        return dict(self._states)

    # -- VMs ---------------------------------------------------------------------------------

    def validate(
        self, provider_key: str, provider_type: str, docs: Mapping[str, Mapping[str, Any] | str]
    ) -> dict[str, Verdict]:
        """A verdict per VM id. ``docs`` maps a VM id to its input document, or to the reason
        the plugin could not produce one. Only VMs whose rules, or whose fields the rules read,
        changed are evaluated."""
        active = self._active.get(provider_type)
        state = self._states.get(provider_type)
        if active is None or state is None:
            return {}
        rs, _ = active
        version, digest = str(state.version), rs.digest
        records = self.store.validations(provider_key)
        verdicts: dict[str, Verdict] = {}
        todo: list[tuple[str, str, str]] = []  # (vm id, input digest, json)
        fresh: list[ValidationRecord] = []
        problems: list[str] = []  # what the rules did wrong (shown once per rule set)
        for vm_id, doc in docs.items():
            if isinstance(doc, str):
                result = {"concerns": [_failed(f"the source plugin gave no document: {doc}")]}
                fresh.append(
                    ValidationRecord(provider_key, vm_id, version, digest, "", result, _now())
                )
                continue
            doc = project(doc, *self._trees.get(provider_type, (None, None)))
            idig = input_digest(doc)
            rec = records.get(vm_id)
            if rec and (rec.rules_version, rec.rules_digest, rec.input_digest) == (
                version,
                digest,
                idig,
            ):
                verdicts[vm_id] = Verdict(vm_id, tuple(rec.result["concerns"]), False)
                problems += rec.result.get("problems", [])
                continue
            todo.append((vm_id, idig, json.dumps(doc, default=str, ensure_ascii=False)))
        engine = self._engine(provider_type)
        when = _now()
        timeouts = 0
        results = engine.evaluate([t[2] for t in todo])
        for n, ((vm_id, idig, _), res) in enumerate(zip(todo, results, strict=False)):
            if not res.ok and "did not finish" in res.error:
                timeouts += 1
            if timeouts >= MAX_TIMEOUTS:
                results.close()
                why = (
                    f"not evaluated: the {provider_type} rules overran their deadline on "
                    f"{timeouts} VMs in this pass; retried next pass"
                )
                for later_id, _, _ in todo[n:]:
                    verdicts[later_id] = Verdict(later_id, (_failed(why),), True)
                if why not in state.warnings:
                    state.warnings.append(why)
                break
            mine = []
            if not res.ok:
                concerns = [_failed(tidy(res.error))]
            elif not isinstance(res.result, dict):
                concerns = [
                    _failed(f"validate returned {type(res.result).__name__}, not an object")
                ]
            else:
                mine: list[str] = []
                concerns = normalize_concerns(res.result.get("concerns"), mine)
                problems += mine
                for err in res.result.get("errors") or []:
                    concerns.append(
                        {
                            "id": ERROR_ID,
                            "category": "Warning",
                            "label": "Validation error",
                            "assessment": str(err),
                        }
                    )
            result = {"concerns": concerns}
            if res.ok and mine:
                result["problems"] = sorted(set(mine))
            fresh.append(ValidationRecord(provider_key, vm_id, version, digest, idig, result, when))
        for problem in sorted(set(problems)):
            if problem not in state.warnings:
                state.warnings.append(problem)
        self.store.put_validations(fresh)
        self.store.forget_validations(provider_key, docs.keys())
        for rec in fresh:
            if rec.vm_id in verdicts:
                continue
            verdicts[rec.vm_id] = Verdict(rec.vm_id, tuple(rec.result["concerns"]), True)
        return verdicts


def diagnose(rs: RuleSet, engine: Engine, message: str) -> list[str]:
    """Which repo files make the set fail: each one added alone to the defaults."""
    custom = rs.custom_files
    if not custom:
        return [f"the default {rs.provider_type} rules do not compile: {message}"]
    base = [f for f in rs.files if not f.custom]
    bad = []
    for f in custom:
        others = [b for b in base if b.base != f.base]
        r = compile_rules(engine, RuleSet(rs.provider_type, files=[*others, f]))
        if not r.ok:
            clash = _default_clashes(f, others)
            bad.append(f"{f.name}: {tidy(r.error)}" + (f" ({clash})" if clash else ""))
    if bad:
        return [f"rule file rejected: {b}" for b in bad]
    names = ", ".join(f.name for f in custom)
    return [f"the repo's rule files do not compile together ({names}): {message}"]


Cut = tuple[Tree | None, frozenset[str] | None]


def _cut(rs: RuleSet) -> Cut:
    """What of a VM's document the engine needs for ``rs`` (see projection.py)."""
    sources = [f.source for f in rs.files]
    return input_tree(sources), element_keys(sources)


def _failed(reason: str) -> dict[str, str]:
    return {
        "id": FAILED_ID,
        "category": "Critical",
        "label": "VM could not be validated",
        "assessment": f"{reason}. The VM is not migrated until it is validated (other VMs are "
        "not affected); fix or remove the rule and bump the rules version to validate it again.",
    }
