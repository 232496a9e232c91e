"""The shipped rule sets: they compile, every test passes, every concern id is tested both ways."""

from __future__ import annotations

import json
import re

import pytest
from ruamel.yaml import YAML

from reconciler.validation.engine import RegoEngine
from reconciler.validation.rule_tests import run_all
from reconciler.validation.ruleset import (
    compile_rules,
    default_rules_of,
    load_rule_set,
    rule_types,
)

_ID = re.compile(r'"id"\s*:\s*"([^"]+)"')


@pytest.fixture(scope="module")
def engine():
    with RegoEngine(eval_timeout=30) as eng:
        yield eng


@pytest.mark.parametrize("ptype", rule_types())
def test_every_default_rule_test_passes(ptype: str, engine: RegoEngine) -> None:
    rs = load_rule_set(ptype, None)
    assert rs.files and rs.cases, f"no default rules or cases for {ptype}"
    outcomes = run_all(rs, engine, None)
    failed = [f"{o.where} {o.name}: {o.message}" for o in outcomes if not o.passed]
    assert failed == []
    assert len(outcomes) >= 2 * len(_ids(ptype))


def _ids(ptype: str) -> set[str]:
    rs = load_rule_set(ptype, None)
    return {i for f in rs.files for i in _ID.findall(f.source)}


@pytest.mark.parametrize("ptype", rule_types())
def test_every_concern_id_has_a_positive_and_a_negative_case(ptype: str) -> None:
    positive: set[str] = set()
    negative: set[str] = set()
    ids = _ids(ptype)
    for path in sorted(default_rules_of(ptype).glob("*_cases.yaml")):
        for case in YAML(typ="safe").load(path.read_text()):
            want = set(case.get("expect", [])) | set(case.get("includes", []))
            positive |= want
            if "expect" in case:
                negative |= ids - want
            negative |= set(case.get("excludes", []))
    assert ids - positive == set(), "ids never expected by a case"
    assert ids - negative == set(), "ids never shown absent by a case"


@pytest.mark.parametrize("ptype", rule_types())
def test_a_plain_vm_has_no_concerns_and_a_nameless_one_an_error(
    ptype: str, engine: RegoEngine
) -> None:
    rs = load_rule_set(ptype, None)
    built = compile_rules(engine, rs)
    assert built.ok and isinstance(built.result, int)
    plain, nameless = engine.evaluate([json.dumps({"name": "ok-vm"}), "{}"])
    assert plain.result == {"rules_version": built.result, "errors": [], "concerns": []}
    assert nameless.result["errors"] != []
