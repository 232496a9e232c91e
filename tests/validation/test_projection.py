"""The engine gets only what the rules read, and that never changes what the rules say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.validation.engine import RegoEngine
from reconciler.validation.projection import element_keys, input_tree, project
from reconciler.validation.ruleset import compile_rules, load_rule_set, rule_types

DOCS_VM = Path(__file__).parent / "data" / "mtv_docs_vm.json"


def test_chains_filters_and_type_checks() -> None:
    src = """package p
# input.commented.out is not read
x := "input.in.a.string"
a if input.host.cluster.drsEnabled
b if input["disks"][_].rdm
c := object.filter(input.host, [
    "inMaintenance",
    "productVersion",
],)
d if not is_object(input)
"""
    assert input_tree([src]) == {
        "disks": {},
        "host": {"cluster": {"drsEnabled": {}}, "inMaintenance": {}, "productVersion": {}},
    }


@pytest.mark.parametrize(
    "src", ["r if input[k] == 1", "r if count(input) > 1", "r := object.get(input, 'a', 1)"]
)
def test_whole_input_uses_turn_projection_off(src: str) -> None:
    assert input_tree(["package p\n" + src + "\n"]) is None


def test_a_shorter_path_keeps_the_whole_subtree() -> None:
    tree = input_tree(["a if input.host.cluster.drsEnabled\nb if input.host\n"])
    assert tree == {"host": {}}
    doc = {"host": {"cluster": {"drsEnabled": True}, "networking": {"x": 1}}, "other": 2}
    assert project(doc, tree) == {"host": doc["host"]}


def _case_inputs(ptype: str) -> list[dict]:
    rs = load_rule_set(ptype, None)
    docs = [c["input"] for p in rs.cases for c in YAML(typ="safe").load(p.read_text())]
    if ptype == "vsphere":
        docs.append(json.loads(DOCS_VM.read_text())["input"])
    return docs


@pytest.mark.parametrize("ptype", rule_types())
def test_projected_documents_give_the_same_verdicts(ptype: str) -> None:
    rs = load_rule_set(ptype, None)
    tree = input_tree(f.source for f in rs.files)
    keys = element_keys(f.source for f in rs.files)
    assert tree is not None, f"the shipped {ptype} rules should allow projection"
    docs = _case_inputs(ptype)
    with RegoEngine(eval_timeout=30) as engine:
        assert compile_rules(engine, rs).ok
        full = list(engine.evaluate([json.dumps(d) for d in docs]))
        cut = list(engine.evaluate([json.dumps(project(d, tree, keys)) for d in docs]))
    assert [r.result for r in cut] == [r.result for r in full]


def test_objects_in_kept_arrays_keep_only_keys_a_rule_names() -> None:
    src = 'package p\nr if { some d in input.disks; d.rdm; d.datastore.id == "x" }\n'
    keys = element_keys([src])
    doc = {"disks": [{"rdm": True, "serial": "s1", "datastore": {"id": "x", "kind": "D"}}]}
    assert project(doc, input_tree([src]), keys) == {
        "disks": [{"rdm": True, "datastore": {"id": "x"}}]
    }


@pytest.mark.parametrize(
    "src",
    ['r if { some d in input.disks; some k, v in d; k == "x" }', "r if walk(input.disks, [p, v])"],
)
def test_rules_that_read_keys_as_data_keep_whole_objects(src: str) -> None:
    assert element_keys(["package p\n" + src + "\n"]) is None
