"""Strings with backslashes, quotes, control characters and non-ASCII characters reach the
rules in one form, however the document's JSON text wrote them, and come back exactly: the
whole set, the set in groups and the term path agree on every VM.

rego-cpp 1.5.2 (regopy 1.5.2, the newest release) holds every string of a module, plain or raw
literal, as its JSON text with the escapes kept, and its built-ins compare, count and print that
text. An input string given as the characters it is (regopy's own ``set_input``) then differs
from every literal with an escape (``input.p == "c:\\\\"`` is false for the path ``c:\\``) and is
printed unescaped (a '"' makes the output unreadable). The engine gives a string holding '"',
'\\' or a control character as JSON writes it, and every other character as itself: comparisons
with literals, ``startswith``/``endswith``, ``lower`` and the printed output then mean what OPA
means; what still differs is a built-in that looks at single characters of such a string
(``count``, ``substring``, ``regex``): it sees the escape (pinned below, so an upgrade that
fixes it is noticed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.validation.engine import EvalResult, RegoEngine
from reconciler.validation.ruleset import load_rule_set, validate_query

SAMPLE = json.loads(
    (Path(__file__).parents[2] / "rules" / "vsphere" / "sample_vm.json").read_text()
)

ODD = [
    "F:\\",  # a Windows drive
    "web\\01",
    'My "VM"',
    "ctl\u0001x",
    "new\nline",
    "tab\there",
    "Café",
    "grin \U0001f600",
    '\\\\srv\\share "x"\t\u00e9\U0001f600',
]


def _vm(name: str) -> dict[str, Any]:
    """The sample VM, a Windows guest whose name and tight guest disk hold ``name``."""
    doc = copy.deepcopy(SAMPLE)
    doc["name"] = name
    doc["guestId"] = "windows2019srv_64Guest"
    doc["guestDisks"] = [
        {"diskPath": "C:\\", "freeSpace": 60 * 1048576, "key": 2000},
        {"diskPath": name, "freeSpace": 5 * 1048576},
    ]
    return doc


def _marked(v: Any) -> Any:
    """``v`` with each '"' in its strings (keys too) replaced by a private-use mark."""
    if isinstance(v, str):
        return v.replace('"', "\ue000")
    if isinstance(v, dict):
        return {_marked(k): _marked(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_marked(x) for x in v]
    return v


def _texts(doc: Any) -> list[str]:
    """The document's JSON text written three ways: characters raw, escaped, and every '"'
    inside a string written as ``\\u0022``."""
    raw, ascii_text = json.dumps(doc, ensure_ascii=False), json.dumps(doc)
    quoted = json.dumps(_marked(doc)).replace("\\ue000", "\\u0022")
    assert json.loads(quoted) == doc
    return [raw, ascii_text, quoted]


def _same(r: EvalResult) -> object:
    assert r.ok, r.error
    return {
        **r.result,
        "concerns": sorted(json.dumps(c, sort_keys=True) for c in r.result["concerns"]),
    }


@pytest.mark.parametrize("learn", [200, 3], ids=["groups", "merged-after-3"])
def test_the_whole_set_the_groups_and_the_term_path_agree_on_odd_strings(learn: int) -> None:
    rs = load_rule_set("vsphere", None)
    query = validate_query("vsphere")
    docs = [_vm(n) for n in ODD]
    lines = [t for d in docs for t in _texts(d)]
    assert "\\u0022" in lines[8] and json.loads(lines[8])["name"] == 'My "VM"'
    with RegoEngine(eval_timeout=30) as grouped, RegoEngine(eval_timeout=30) as whole:
        whole.split = False
        grouped.learn = learn
        assert grouped.build(rs.modules, query).ok and grouped.grouped
        assert whole.build(rs.modules, query).ok and not whole.grouped
        a = [_same(r) for r in grouped.evaluate(lines, batch=5)]
        b = [_same(r) for r in whole.evaluate(lines, batch=5)]
        # a fresh interpreter, the document given as a term of its canonical text
        term = [
            _same(grouped.query(rs.modules, query, json.dumps(d, ensure_ascii=False))) for d in docs
        ]
    assert a == b
    for n, doc in enumerate(docs):
        assert a[3 * n] == a[3 * n + 1] == a[3 * n + 2] == term[n], doc["name"]
        concerns = {c["id"]: c for c in (json.loads(x) for x in a[3 * n]["concerns"])}
        # "C:\\" is compared with the rule's literal "c:\\": 100 MB needed, as in OPA
        space = concerns["vmware.guestDisks.freespace"]["assessment"]
        assert "(60 MB free, 100 MB needed)" in space, space


ECHO = """package t
import rego.v1

v := {
	"name": input.name,
	"keys": [k | input.obj[k]],
	"ends": endswith(input.name, "\\\\"),
	"starts": startswith(input.name, "\\""),
	"is_drive": input.name == "F:\\\\",
	"in_set": lower(input.name) in {"f:\\\\", "my \\"vm\\"", "tab\\there", "café"},
	"count": count(input.name),
	"lower": lower(input.name),
	"parts": split(input.name, "\\\\"),
}
"""

# OPA's answers, except "count" of a string with an escaped character (see the module's doc)
EXPECTED = {
    "F:\\": {"ends": True, "starts": False, "is_drive": True, "in_set": True, "count": 4},
    'My "VM"': {"ends": False, "starts": False, "is_drive": False, "in_set": True, "count": 9},
    "tab\there": {"ends": False, "starts": False, "is_drive": False, "in_set": True, "count": 9},
    '"q\\': {"ends": True, "starts": True, "is_drive": False, "in_set": False, "count": 5},
    "Café": {"ends": False, "starts": False, "is_drive": False, "in_set": True, "count": 4},
    "grin \U0001f600": {"ends": False, "starts": False, "is_drive": False, "in_set": False,
                        "count": 6},
}  # fmt: skip


def test_a_custom_rule_sees_the_strings_as_opa_does_however_the_text_wrote_them() -> None:
    with RegoEngine(eval_timeout=30) as engine:
        assert engine.build([("t.rego", ECHO)], "x = data.t.v").ok
        for name, want in EXPECTED.items():
            doc = {"name": name, "obj": {name: 1}}
            for text in _texts(doc):
                [r] = engine.evaluate([text])
                assert r.ok, r.error
                got = r.result
                assert got["name"] == name and got["keys"] == [name], text
                assert {k: got[k] for k in want} == want, text
                assert got["lower"] == name.lower(), text
                assert got["parts"] == name.split("\\"), text
    # OPA's count where no character is escaped; an escaped one counts its escape (regopy)
    for name, want in EXPECTED.items():
        assert want["count"] == len(json.dumps(name, ensure_ascii=False)) - 2


def test_a_builtin_that_breaks_an_escape_is_a_failed_vm_never_a_different_answer() -> None:
    """``upper`` turns the escape ``\\n`` into ``\\N``: the output cannot be read, and the VM
    fails (the service makes that a Critical concern) instead of getting another string."""
    rules = 'package t\nimport rego.v1\nv := {"u": upper(input.name)}\n'
    with RegoEngine(eval_timeout=30) as engine:
        assert engine.build([("t.rego", rules)], "x = data.t.v").ok
        bad, good = engine.evaluate([json.dumps({"name": "new\nline"}), json.dumps({"name": "ok"})])
    assert not bad.ok and bad.error
    assert good.ok and good.result == {"u": "OK"}  # the worker went on to the next VM
