"""``lint`` for the repo's rules: every ``rules/<provider>/`` compiles with the defaults."""

from __future__ import annotations

from pathlib import Path

from reconciler.validation.engine import RegoEngine
from reconciler.validation.ruleset import (
    PACKAGES,
    RULES_DIR,
    compile_rules,
    engine_notes,
    load_rule_set,
    repo_provider_types,
    rewrite_notes,
)
from reconciler.validation.service import diagnose, tidy


def lint_rules(root: Path) -> tuple[list[str], list[str], list[str]]:
    """(errors, warnings, notes) about the repo's custom rules; nothing when it has none.
    Notes are information: each rewrite made before compiling (file:line, before, after)."""
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    types = repo_provider_types(root)
    if not types:
        return errors, warnings, notes
    with RegoEngine() as engine:
        for ptype in types:
            if ptype not in PACKAGES:
                errors.append(
                    f"{RULES_DIR}/{ptype}/: no provider type {ptype!r}; rule folders are "
                    f"{', '.join(sorted(PACKAGES))}"
                )
                continue
            rs = load_rule_set(ptype, root)
            for f in rs.custom_files:
                warnings += engine_notes(f)
                notes += rewrite_notes(f)
            if rs.problems:
                errors += rs.problems
                continue
            built = compile_rules(engine, rs)
            if not built.ok:
                errors += diagnose(rs, engine, tidy(built.error))
    return errors, warnings, notes
