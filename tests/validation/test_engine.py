"""The rule engine runs in its own process: nothing a rule does reaches the reconciler."""

from __future__ import annotations

import json

import pytest

from reconciler.validation.engine import RegoEngine

RULES = """package t
import rego.v1

RULES_VERSION := 7

concerns contains {"id": "big"} if input.size > 10

concerns contains {"id": "slow"} if {
  input.slow
  count([x | some x in numbers.range(1, 100000000)]) > 0
}

validate := {"rules_version": RULES_VERSION, "errors": [], "concerns": concerns}
"""


@pytest.fixture
def engine():
    with RegoEngine(eval_timeout=1.5) as eng:
        yield eng


def test_build_then_evaluate_many(engine: RegoEngine) -> None:
    built = engine.build([("t.rego", RULES)], "x = data.t.validate", "x = data.t.RULES_VERSION")
    assert built.ok and built.result == 7
    docs = [json.dumps({"size": n}) for n in range(20)]
    results = list(engine.evaluate(docs, batch=7))
    assert [r.result["concerns"] for r in results] == [[]] * 11 + [[{"id": "big"}]] * 9


def test_a_rule_that_loops_costs_only_its_own_vm(engine: RegoEngine) -> None:
    assert engine.build([("t.rego", RULES)], "x = data.t.validate").ok
    docs = [{"size": 11}, {"slow": True}, {"size": 12}]
    results = list(engine.evaluate([json.dumps(d) for d in docs]))
    assert results[0].ok and results[2].ok  # the worker was restarted and rebuilt
    assert not results[1].ok
    assert "did not finish within 1.5 s" in results[1].error


def test_a_crash_in_native_code_is_a_result(engine: RegoEngine) -> None:
    # rego-cpp aborts the process on a query of an undefined document (SIGABRT)
    res = engine.query([("t.rego", RULES)], "x = data.t.nothing_here")
    assert not res.ok
    assert "exited" in res.error
    again = engine.query([("t.rego", RULES)], "x = data.t.RULES_VERSION")
    assert again.ok and again.result == 7


def test_compile_errors_come_back_with_file_and_line(engine: RegoEngine) -> None:
    built = engine.build(
        [("rules/vsphere/x.rego", "package t\nconcerns contains f if {\n")], "x = data.t.validate"
    )
    assert not built.ok
    assert "rules/vsphere/x.rego:2:" in built.error
    assert "unclosed" in built.error


def test_strings_with_quotes_backslashes_and_unicode_come_back_intact(engine: RegoEngine) -> None:
    echo = 'package t\nimport rego.v1\nvalidate := {"n": input.name, "c": count(input.name)}\n'
    assert engine.build([("t.rego", echo)], "x = data.t.validate").ok
    names = ['My "VM"', "a\\b", "Café 漢字", "tab\there", "plain"]
    docs = [json.dumps({"name": n}, ensure_ascii=False) for n in names]
    results = list(engine.evaluate(docs))
    assert [r.result["n"] for r in results] == names
    # strings without escapes are counted as characters (escaped ones count their escapes: a
    # regopy quirk noted in rules/vsphere/INPUT.md)
    assert [r.result["c"] for r in results][2::2] == [7, 5]


def test_a_result_the_engine_prints_badly_is_a_per_vm_error(engine: RegoEngine) -> None:
    rules = (
        'package t\nimport rego.v1\nvalidate := {"m": sprintf("name %s", [lower(input.name)])}\n'
    )
    assert engine.build([("t.rego", rules)], "x = data.t.validate").ok
    bad, good = engine.evaluate([json.dumps({"name": "A"}), json.dumps({"nam": 1})])
    assert not bad.ok and "build the text with concat" in bad.error
    assert not good.ok and "undefined" in good.error  # the worker went on to the next VM
