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


def test_a_document_with_escapes_is_given_to_the_engine_in_one_form_however_it_was_written() -> (
    None
):
    """Strings go in as ``json.dumps(..., ensure_ascii=False)`` writes them, the form rego-cpp
    holds a module's literals in (escapes kept for '"', '\\' and control characters, every
    other character as itself), whether the document's text wrote a character raw or as an
    escape: the engine's output is byte for byte what parsing that canonical text as a term
    gives (quirks included), at a fraction of the cost. (It used to follow the text as written,
    so an ASCII-only text gave 'é' to the rules as the six characters of its escape.)"""
    from regopy import Interpreter
    from regopy import rego_shared as c

    from reconciler.validation.worker import set_input

    rules = (
        "package t\nimport rego.v1\n"
        'safe(s) := regex.replace(regex.replace(s, "[\\"\\\\\\\\]", "_"), "[[:cntrl:]]", " ")\n'
        'v := {"echo": input, "n": count(input.name), "safe": safe(input.name),'
        ' "eq": input.name == "a\\\\b", "lower": lower(input.name), "keys": [k | input.obj[k]],'
        ' "parts": split(input.name, "\\\\"), "at": indexof(input.name, "\\\\"),'
        ' "json": json.marshal(input.name), "sub": substring(input.name, 0, 3)}\n'
    )
    interp = Interpreter()
    interp.add_module("t.rego", rules)
    bundle = interp.build("x = data.t.v")

    def output() -> str:
        impl = c.rego_bundle_query(interp._impl, bundle._impl)
        try:
            return c.rego_output_string(impl)
        finally:
            c.rego_free_output(impl)

    names = ['My "VM"', "a\\b", "C:\\", "\\\\srv\\share", "tab\there", "new\nline",
             "ctl\u0001x", "Café 漢字 \\ é", "😀\\"]  # fmt: skip
    for name in names:
        doc = {"name": name, "obj": {name: 1, 'k\\"': 2}, "list": [name, 1.5, None, True]}
        interp.set_input_term(json.dumps(doc, ensure_ascii=False))
        as_term = output()
        for ascii_only in (False, True):
            text = json.dumps(doc, ensure_ascii=ascii_only)
            set_input(interp, text, json.loads(text))
            assert output() == as_term, (name, ascii_only)
