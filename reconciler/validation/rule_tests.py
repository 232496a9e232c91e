"""``rules test``: run the tests of a rule set, OPA-style ``test_*`` rules and data cases.

Data cases (``*_cases.yaml``: an input document and the concern ids expected) exist because
regopy 1.5.2 cannot evaluate ``with input as`` when the queried rule depends on another rule; a
``test_*`` rule that hits that limit is reported with that advice, not as a rule failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.validation.engine import Engine
from reconciler.validation.ruleset import RuleSet, compile_rules, package_of
from reconciler.validation.service import tidy

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b", re.MULTILINE)
_WITH_LIMIT = ("rego-localref", "rego-refhead")


@dataclass(frozen=True)
class Outcome:
    where: str  # file:line
    name: str
    passed: bool
    message: str = ""


def _ids(result: Any) -> set[str]:
    concerns = result.get("concerns", []) if isinstance(result, dict) else []
    return {str(c.get("id") or c.get("label")) for c in concerns if isinstance(c, dict)}


def _display(path: Path, repo_root: Path | None) -> str:
    if repo_root is not None:
        try:
            return str(path.relative_to(repo_root))
        except ValueError:
            pass
    return f"defaults/{path.parent.name}/{path.name}"


def _load_cases(path: Path, where: str) -> tuple[list[tuple[int, dict]], list[Outcome]]:
    try:
        doc = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        return [], [Outcome(where, "(file)", False, f"cannot read the cases: {exc}")]
    if not isinstance(doc, list):
        return [], [Outcome(where, "(file)", False, "expected a YAML list of cases")]
    cases, bad = [], []
    for i, case in enumerate(doc):
        line = case.lc.line + 1 if hasattr(case, "lc") else 0
        if not isinstance(case, dict) or "input" not in case:
            bad.append(Outcome(f"{where}:{line}", f"case {i + 1}", False, "a case needs `input`"))
            continue
        cases.append((line, case))
    return cases, bad


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_cases(rs: RuleSet, engine: Engine, repo_root: Path | None) -> list[Outcome]:
    out: list[Outcome] = []
    built = compile_rules(engine, rs)
    if not built.ok:
        return [Outcome(f"rules/{rs.provider_type}", "(build)", False, tidy(built.error))]
    for path in rs.cases:
        where = _display(path, repo_root)
        cases, bad = _load_cases(path, where)
        out += bad
        inputs = [json.dumps(_plain(case["input"])) for _, case in cases]
        for (line, case), res in zip(cases, engine.evaluate(inputs), strict=True):
            name = str(case.get("name") or f"case at line {line}")
            at = f"{where}:{line}"
            if not res.ok:
                out.append(Outcome(at, name, False, f"evaluation failed: {tidy(res.error)}"))
                continue
            got = _ids(res.result)
            msgs = []
            if "expect" in case:
                want = {str(x) for x in case["expect"] or []}
                if got != want:
                    msgs.append(f"expected exactly {sorted(want)}, got {sorted(got)}")
            if "includes" in case:
                missing = {str(x) for x in case["includes"] or []} - got
                if missing:
                    msgs.append(f"missing {sorted(missing)} (got {sorted(got)})")
            if "excludes" in case:
                unexpected = {str(x) for x in case["excludes"] or []} & got
                if unexpected:
                    msgs.append(f"unexpected {sorted(unexpected)} (got {sorted(got)})")
            out.append(Outcome(at, name, not msgs, "; ".join(msgs)))
    return out


def run_test_rules(rs: RuleSet, engine: Engine) -> list[Outcome]:
    out: list[Outcome] = []
    modules = rs.modules + [(f.name, f.source) for f in rs.tests]
    package = package_of(rs.provider_type)
    for f in rs.tests:
        for m in _TEST_RULE.finditer(f.source):
            name = m.group(1)
            line = f.source.count("\n", 0, m.start()) + 1
            res = engine.query(modules, f"x = data.{package}.{name}")
            at = f"{f.name}:{line}"
            if res.ok and res.result is True:
                out.append(Outcome(at, name, True))
            elif res.ok:
                out.append(Outcome(at, name, False, f"evaluated to {json.dumps(res.result)}"))
            elif any(s in res.error for s in _WITH_LIMIT):
                out.append(
                    Outcome(
                        at,
                        name,
                        False,
                        "regopy cannot evaluate `with input as` when the rule under test depends "
                        "on other rules; write this test as a data case in a *_cases.yaml file",
                    )
                )
            else:
                out.append(Outcome(at, name, False, tidy(res.error)))
    return out


def run_all(
    rs: RuleSet, engine: Engine, repo_root: Path | None, defaults: bool = False
) -> list[Outcome]:
    """The repo's tests against the set in force (defaults plus the repo's files); with
    ``defaults``, also the shipped tests against the shipped rules they were written for."""
    out = [Outcome(p.split(":")[0], "(load)", False, p) for p in rs.problems]
    mine = _only(rs, custom=True) if repo_root is not None else _only(rs, custom=False)
    out += run_cases(mine, engine, repo_root) + run_test_rules(mine, engine)
    if defaults and repo_root is not None:
        shipped = _only(rs.without_custom(), custom=False)
        out += run_cases(shipped, engine, None) + run_test_rules(shipped, engine)
    return out


def _only(rs: RuleSet, custom: bool) -> RuleSet:
    """``rs`` with only the repo's (or only the shipped) tests and cases."""
    picked = RuleSet(rs.provider_type, files=rs.files, problems=rs.problems)
    picked.tests = [t for t in rs.tests if t.custom == custom]
    picked.cases = [c for c in rs.cases if (not c.is_relative_to(rs.defaults_dir)) == custom]
    return picked
