"""A rule set evaluated as groups of files, each group's answer remembered by the part of the
document it reads, gives every VM what the whole set gives; a set the split cannot prove equal
is evaluated whole."""

from __future__ import annotations

import json

import pytest

from reconciler.validation.engine import EvalResult, RegoEngine
from reconciler.validation.groups import split
from reconciler.validation.ruleset import load_rule_set, validate_query

PKG = "io.konveyor.forklift.vmware"
QUERY = f"x = data.{PKG}.validate"
HEADER = f"package {PKG}\n\nimport rego.v1\n\n"
VALIDATE = HEADER + (
    'validate := {"rules_version": 1, "errors": errors, "concerns": concerns}\n\n'
    'errors contains "no name" if not input.name\n'
)
TEXT = HEADER + 'quoted(s) := concat("", ["\'", s, "\'"])\n'
HOST = HEADER + (
    'concerns contains {"id": "host.old", "category": "Warning", "label": "old",\n'
    '\t"assessment": quoted(input.host.version)} if input.host.version == "6.0"\n'
)
NAME = HEADER + (
    'concerns contains {"id": "name.upper", "category": "Warning", "label": "upper",\n'
    '\t"assessment": quoted(input.name)} if upper(input.name) == input.name\n'
)


def names(groups) -> list[list[str]]:
    return [[n.rsplit("/", 1)[-1] for n, _ in g.modules] for g in groups]


def test_the_default_vsphere_set_splits_by_what_each_file_reads() -> None:
    rs = load_rule_set("vsphere", None)
    groups = split(rs.modules, validate_query("vsphere"))
    assert groups is not None and groups[0].main and not any(g.main for g in groups[1:])
    assert groups[0].query == validate_query("vsphere")
    assert {g.query for g in groups[1:]} == {f"x = data.{PKG}.concerns"}
    shared = {"text.rego", "rules_version.rego"}  # no input read: in every group
    own = [set(n) - shared for n in names(groups)]
    assert all(shared <= set(n) for n in names(groups))
    files = {f.base for f in rs.files} - shared
    assert sorted(f for o in own for f in o) == sorted(files)  # each file in one group
    assert {"validate.rego", "name.rego"} in own  # validate reads name.rego's cut
    assert {"cluster.rego"} in own  # many VMs, one cluster: evaluated once per cluster
    [cluster] = [g for g, o in zip(groups, own, strict=True) if o == {"cluster.rego"}]
    assert cluster.tree == {
        "host": {
            "cluster": {"drsEnabled": {}, "dasEnabled": {}, "dpmEnabled": {}, "hostAffinityVms": {}}
        }
    }


def test_files_that_use_each_others_rules_are_one_group() -> None:
    groups = split(
        [("validate.rego", VALIDATE), ("text.rego", TEXT), ("host.rego", HOST),
         ("name.rego", NAME), ("more.rego", HEADER + "old if input.host.version == \"5.5\"\n"),
         ("uses.rego", HEADER + 'concerns contains {"id": "u"} if old\n')],
        QUERY,
    )  # fmt: skip
    assert groups is not None
    assert names(groups) == [
        ["validate.rego", "text.rego", "host.rego"],  # validate's group needs a concern rule
        ["text.rego", "name.rego"],
        ["text.rego", "more.rego", "uses.rego"],
    ]
    assert groups[1].tree == {"name": {}}
    assert groups[2].tree == {"host": {"version": {}}}


@pytest.mark.parametrize(
    "extra",
    [
        HEADER + 'errors contains "many" if count(concerns) > 3\n',  # reads the union
        HEADER + 'concerns contains {"id": "d"} if data.io.konveyor.forklift.vmware.x\n',
        HEADER + 'concerns contains {"id": "w"} if { old with input as {} }\nold if input.a\n',
        HEADER + "concerns := set()\n",  # not a partial set
        HEADER + 'validate := {"concerns": concerns} if input.b\n',  # a second validate
        "package other\n\nimport rego.v1\n\nx := 1\n",  # another package
        HEADER + "import input.host\n\nconcerns contains 1 if host.a\n",
        HEADER + "orphan if input.c\n",  # rules validate never reads: not skipped silently
    ],
    ids=["count", "data", "with", "complete", "validate", "package", "import", "unread"],
)
def test_a_set_the_split_cannot_prove_equal_is_evaluated_whole(extra: str) -> None:
    base = [("validate.rego", VALIDATE), ("text.rego", TEXT), ("host.rego", HOST)]
    assert split(base, QUERY) is not None
    assert split([*base, ("extra.rego", extra)], QUERY) is None


def test_validate_must_hand_concerns_over_whole() -> None:
    counted = VALIDATE.replace('"concerns": concerns', '"concerns": count(concerns)')
    assert split([("validate.rego", counted), ("host.rego", HOST)], QUERY) is None
    assert split([("validate.rego", VALIDATE), ("host.rego", HOST)], "x = data.p.q") is None


# a conflict (two values for one complete rule) on the VMs of one host only
CONFLICT = HEADER + (
    'level := 1 if input.host.version == "bad"\nlevel := 2 if input.host.version == "bad"\n'
    'concerns contains {"id": "level", "category": "Warning", "label": "l", "assessment": "a"}'
    " if level\n"
)


def _same(r: EvalResult) -> object:
    if not r.ok:
        return ("failed", bool(r.error))
    return {
        **r.result,
        "concerns": sorted(json.dumps(c, sort_keys=True) for c in r.result["concerns"]),
    }


@pytest.mark.parametrize("learn", [200, 9], ids=["groups", "merged-after-9"])
def test_a_vm_whose_group_fails_fails_alone_and_copies_fail_alike(learn: int) -> None:
    modules = [
        ("validate.rego", VALIDATE), ("text.rego", TEXT), ("host.rego", HOST),
        ("name.rego", NAME), ("conflict.rego", CONFLICT),
    ]  # fmt: skip
    docs = []
    for i in range(40):
        version = ["6.0", "7.0", "bad"][i % 3] if i != 5 else "bad"
        docs.append({"name": f"VM{i}" if i % 2 else f"vm{i}", "host": {"version": version}})
    docs.append({"host": {"version": "6.0"}})  # an error, not a failure
    docs.append("not an object")
    lines = [json.dumps(d) for d in docs]
    with RegoEngine(eval_timeout=30) as grouped, RegoEngine(eval_timeout=30) as whole:
        whole.split = False
        grouped.learn = learn  # after `learn` VMs, the groups most VMs miss are built as one
        assert grouped.build(modules, QUERY).ok and grouped.grouped
        assert whole.build(modules, QUERY).ok and not whole.grouped
        a = list(grouped.evaluate(lines, batch=7))
        b = list(whole.evaluate(lines, batch=7))
        again = list(grouped.evaluate(lines[::-1], batch=5))  # now all from the groups' memory
    assert [_same(r) for r in a] == [_same(r) for r in b] == [_same(r) for r in again[::-1]]
    failed = [i for i, r in enumerate(a) if not r.ok]
    assert failed == [i for i, d in enumerate(docs[:40]) if d["host"]["version"] == "bad"]
    assert a[40].ok and a[40].result["errors"] == ["no name"]
    assert {c["id"] for c in a[40].result["concerns"]} == {"host.old"}
    assert a[1].ok and {c["id"] for c in a[1].result["concerns"]} == {"name.upper"}
