"""The loader rewrites the shapes regopy reads differently from OPA, in default and repo rules."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from reconciler.plugin_manager import rule_types
from reconciler.validation.engine import RegoEngine
from reconciler.validation.lint import lint_rules
from reconciler.validation.opa_compat import rewrite
from reconciler.validation.regov0 import RegoSyntaxError
from reconciler.validation.ruleset import compile_rules, default_rules_of, load_rule_set

V1_RULES = """package io.konveyor.forklift.vmware

import rego.v1

concerns contains flag if {
	count(input.disks[i].datastore.id) == 0
	flag := {"id": "custom.datastore.missing", "category": "Warning",
		"label": "l", "assessment": "a"}
}

concerns contains flag if {
	not startswith(input.customAttribute, "keep")
	flag := {"id": "custom.attribute", "category": "Warning", "label": "l", "assessment": "a"}
}
"""

# the same checks as the MTV docs write rules: Rego v0, no import
V0_RULES = """package io.konveyor.forklift.vmware

has_bad_nic {
	regex.match("^e1000$", input.nics[i].interface)
}

concerns[flag] {
	has_bad_nic
	flag := {"id": "custom.nic", "category": "Warning", "label": "l", "assessment": "a"}
}

concerns[flag] {
	not is_number(input.customCount)
	flag := {"id": "custom.count", "category": "Warning", "label": "l", "assessment": "a"}
}
"""


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "rules" / "vsphere"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tmp_path


def _ids(engine: RegoEngine, doc: dict) -> set[str]:
    (res,) = engine.evaluate([json.dumps(doc)])
    assert res.ok, res.error
    return {c.get("id") for c in res.result["concerns"]} & {
        "custom.datastore.missing",
        "custom.attribute",
        "custom.nic",
        "custom.count",
    }


@pytest.fixture(scope="module")
def engine():
    with RegoEngine(eval_timeout=30) as eng:
        yield eng


def test_custom_v1_and_v0_rules_give_opas_answer(tmp_path: Path, engine: RegoEngine) -> None:
    root = _repo(tmp_path, {"mine.rego": V1_RULES, "docs_style.rego": V0_RULES})
    rs = load_rule_set("vsphere", root)
    assert rs.problems == []
    assert compile_rules(engine, rs).ok
    # the second disk has no datastore id: OPA iterates i and fires; fields absent: no firing
    doc = {"name": "vm", "disks": [{"datastore": {"id": "ds-1"}}, {"datastore": {"id": ""}}]}
    assert _ids(engine, doc) == {"custom.datastore.missing"}
    doc = {"name": "vm", "nics": [{"interface": "vmxnet3"}, {"interface": "e1000"}]}
    assert _ids(engine, doc) == {"custom.nic"}
    doc = {"name": "vm", "customAttribute": "drop-me", "customCount": "3"}
    assert _ids(engine, doc) == {"custom.attribute", "custom.count"}
    doc = {"name": "vm", "customAttribute": "keep-me", "customCount": 3}
    assert _ids(engine, doc) == set()


def test_each_rewrite_is_reported_with_file_line_before_and_after(tmp_path: Path) -> None:
    root = _repo(tmp_path, {"mine.rego": V1_RULES, "docs_style.rego": V0_RULES})
    errors, _, notes = lint_rules(root)
    assert errors == []
    assert (
        "rules/vsphere/mine.rego:6: rewritten so that regopy evaluates it as OPA does: "
        "`count(input.disks[i].datastore.id) == 0` -> "
        "`__opa1 := input.disks[i].datastore.id; count(__opa1) == 0`"
    ) in notes
    assert any(
        n.startswith("rules/vsphere/mine.rego:12:")
        and '`__opa2 := input.customAttribute; not startswith(__opa2, "keep")`' in n
        for n in notes
    )
    assert any(n.startswith("rules/vsphere/docs_style.rego:4:") for n in notes)
    assert any(n.startswith("rules/vsphere/docs_style.rego:13:") for n in notes)


def test_a_shape_that_cannot_be_rewritten_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = (
        "package io.konveyor.forklift.vmware\n\nimport rego.v1\n\n"
        "concerns contains flag if {\n"
        "\tnot is_string(input.disks[_].file)\n"
        '\tflag := {"category": "Warning", "label": "l", "assessment": "a"}\n'
        "}\n"
    )
    root = _repo(tmp_path, {"bad.rego": bad})
    rs = load_rule_set("vsphere", root)
    assert len(rs.problems) == 1
    assert rs.problems[0].startswith("rules/vsphere/bad.rego:6: `_` inside `not`")
    errors, _, _ = lint_rules(root)
    assert any(e.startswith("rules/vsphere/bad.rego:6:") for e in errors)


def test_rewrites_keep_every_line_where_it_was() -> None:
    src = (
        "package p\nimport rego.v1\n"
        'q contains i if {\n  count(concat("", [\n    input.d[i].x,  # a comment\n  ])) == 0\n}\n'
        "r if not is_string(input.missing)\n"
    )
    out, rewrites = rewrite(src)
    assert out.count("\n") == src.count("\n")
    assert out.splitlines()[7] == "r if { __opa2 := input.missing; not is_string(__opa2) }"
    assert [r.line for r in rewrites] == [4, 8]


@pytest.mark.parametrize("ptype", rule_types())
def test_the_shipped_rules_need_no_rewrite(ptype: str) -> None:
    """Our defaults are written in forms both engines read alike (so OPA users can read them)."""
    rs = load_rule_set(ptype, None)
    found = [
        f"{f.name}:{rw.line}: {rw.before}"
        for f in rs.files + rs.tests
        for rw in f.rewrites
        if rw.kind == "opa"
    ]
    assert found == []


def test_broken_text_is_left_to_the_engine_never_a_crash() -> None:
    """Cut or unbalanced files (as a user saves them mid-edit) come back unchanged or refused."""
    rng = random.Random(7)
    sources = [
        p.read_text()
        for p in sorted(p for t in rule_types() for p in default_rules_of(t).rglob("*.rego"))
    ]
    for source in sources:
        for _ in range(20):
            at = rng.randrange(len(source))
            broken = source[:at] + rng.choice(["(", "[", "{", "}", "`", '"', "not ", "_", ""])
            try:
                rewrite(broken + source[at + rng.randrange(0, 30) :])
            except RegoSyntaxError:
                pass


def test_default_rule_files_are_rewritten_too(tmp_path: Path, engine: RegoEngine) -> None:
    """A shipped rule file with either shape is read as OPA reads it (the loader treats default
    and repo files alike); ours have none today (test above), this keeps the path honest."""
    defaults = tmp_path / "defaults"
    shutil.copytree(default_rules_of("ova"), defaults / "ova")
    (defaults / "ova" / "shapes.rego").write_text(
        "package io.konveyor.forklift.ova\n\nimport rego.v1\n\n"
        "concerns contains flag if {\n"
        '\tlower(input.disks[i].bus) == "ide"\n'
        '\tflag := {"id": "t.ide", "category": "Warning", "label": "l", "assessment": "a"}\n'
        "}\n\n"
        "concerns contains flag if {\n"
        '\tnot startswith(input.ovaPath, "/srv/")\n'
        '\tflag := {"id": "t.path", "category": "Warning", "label": "l", "assessment": "a"}\n'
        "}\n"
    )
    rs = load_rule_set("ova", None, defaults)
    shapes = next(f for f in rs.files if f.base == "shapes.rego")
    assert [rw.line for rw in shapes.rewrites] == [6, 11]
    assert compile_rules(engine, rs).ok
    doc = {"name": "vm", "disks": [{"bus": "scsi"}, {"bus": "IDE"}]}
    (res,) = engine.evaluate([json.dumps(doc)])
    ids = {c.get("id") for c in res.result["concerns"]}
    assert "t.ide" in ids and "t.path" not in ids  # ovaPath absent: OPA does not fire
