"""``lint`` for the repo's rules: every ``rules/<provider>/`` compiles with the defaults, and
evaluates a typical VM of that provider without failing."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.validation.engine import Engine, RegoEngine
from reconciler.validation.opa_compat import concern_shape_problems
from reconciler.validation.ruleset import (
    RULES_DIR,
    RuleSet,
    compile_rules,
    engine_notes,
    load_rule_set,
    replaced_notes,
    repo_provider_types,
    rewrite_notes,
    rule_types,
)
from reconciler.validation.service import diagnose, tidy


def lint_rules(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(errors, warnings, notes) about the repo's custom rules; nothing when it has none.
    Notes are information: each rewrite made before compiling (file:line, before, after), and
    the default files a repo file replaces."""
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    types = repo_provider_types(root)
    if not types:
        return errors, warnings, notes
    with RegoEngine() as engine:
        for ptype in types:
            if ptype not in rule_types():
                errors.append(
                    f"{RULES_DIR}/{ptype}/: no provider type {ptype!r}; rule folders are "
                    f"{', '.join(rule_types())}"
                )
                continue
            rs = load_rule_set(ptype, root)
            notes += replaced_notes(rs)
            for f in rs.custom_files:
                warnings += engine_notes(f)
                notes += rewrite_notes(f)
                errors += [f"{f.name}:{ln}: {why}" for ln, why in concern_shape_problems(f.source)]
            if rs.problems:
                errors += rs.problems
                continue
            built = compile_rules(engine, rs)
            if not built.ok:
                errors += diagnose(rs, engine, tidy(built.error))
                continue
            errors += sample_failures(rs, engine)
    return errors, warnings, notes


def _evaluate_sample(rs: RuleSet, engine: Engine, doc: str) -> str:
    """Why evaluating ``doc`` with the set built in ``engine`` fails, or ""."""
    (res,) = list(engine.evaluate([doc]))
    if not res.ok:
        return tidy(res.error)
    if not isinstance(res.result, dict):
        return f"validate gave {type(res.result).__name__}, not an object"
    return ""


def sample_failures(rs: RuleSet, engine: Engine) -> list[str]:
    """Evaluate the provider's sample VM once with the built set ``rs``; when that fails, name
    the repo files that make it fail (each added alone to the defaults)."""
    if not rs.sample_vm.is_file():
        return []
    doc = json.dumps(json.loads(rs.sample_vm.read_text()))
    why = _evaluate_sample(rs, engine, doc)
    if not why:
        return []
    sample = f"the sample {rs.provider_type} VM ({rs.sample_vm.name})"
    custom = rs.custom_files
    base = [f for f in rs.files if not f.custom]
    bad = []
    for f in custom:
        alone = RuleSet(rs.provider_type, files=[*(b for b in base if b.base != f.base), f])
        if compile_rules(engine, alone).ok:
            err = _evaluate_sample(alone, engine, doc)
            if err:
                bad.append(f"{f.name}: evaluating {sample} fails: {err}")
    if bad:
        return bad
    names = ", ".join(f.name for f in custom) or f"the default {rs.provider_type} rules"
    return [f"{names}: evaluating {sample} fails: {why}"]
