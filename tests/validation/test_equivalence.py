"""The fast path (documents cut to what the rules read, two workers holding one compiled set,
copies of a document evaluated once) says exactly what a fresh interpreter says of the whole
document, for the shipped vSphere rules and for custom rules that read fields the shipped rules
never read."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.validation.engine import (
    EvalResult,
    RegoEngine,
    RegoPool,
    once_per_document,
    pure,
)
from reconciler.validation.projection import element_keys, input_tree, project
from reconciler.validation.ruleset import compile_rules, load_rule_set, validate_query

HEADER = "package io.konveyor.forklift.vmware\n\nimport rego.v1\n\n"

# fields no shipped rule reads: NIC models, host networking, storage used, a disk's own key set
OUTSIDE = (
    HEADER
    + """
concerns contains flag if {
	some nic in input.nics
	nic.model == "e1000"
	flag := {
		"id": "custom.nic.e1000",
		"category": "Warning",
		"label": "e1000 NIC",
		"assessment": concat("", ["NIC ", text_safe(nic.mac), " is an e1000"]),
	}
}

concerns contains flag if {
	slow := [p | some p in input.host.networking.pNICs; p.linkSpeed < 10000]
	count(slow) > 0
	flag := {
		"id": "custom.host.slow_nics",
		"category": "Information",
		"label": "Slow host NICs",
		"assessment": concat("", [text_number(count(slow)), " slow NICs"]),
	}
}

concerns contains flag if {
	input.storageUsed > 50000000000
	flag := {"id": "custom.storage", "category": "Warning", "label": "Big", "assessment": "big"}
}
"""
)

# reads the keys of the disks as data: objects inside arrays must then be kept whole
KEYS_AS_DATA = (
    HEADER
    + """
concerns contains flag if {
	some d in input.disks
	"serial" in object.keys(d)
	flag := {"id": "custom.serial", "category": "Information", "label": "Serial",
		"assessment": text_safe(d.serial)}
}
"""
)

# reads input by a computed key: the document must be passed whole
WHOLE = (
    HEADER
    + """
concerns contains flag if {
	some k in ["annotation", "notes"]
	is_string(input[k])
	flag := {"id": concat(".", ["custom", k]), "category": "Information", "label": k,
		"assessment": text_safe(input[k])}
}
"""
)

SAMPLE = json.loads(
    (Path(__file__).parents[2] / "rules" / "vsphere" / "sample_vm.json").read_text()
)


def _variants() -> list[Any]:
    """A varied estate: each shipped concern and error, odd strings, missing fields, copies."""

    def vm(**changes: Any) -> dict[str, Any]:
        doc = copy.deepcopy(SAMPLE)
        for key, value in changes.items():
            if value is None:
                doc.pop(key, None)
            else:
                doc[key] = value
        return doc

    disk = SAMPLE["disks"][0]
    docs: list[Any] = [
        vm(),
        vm(name="Web_01 (old)", storageUsed=90000000000),
        vm(name='quo"te\\back\tslash', guestName="Microsoft Windows Server 2003"),
        vm(name="ünïcødé-vm", notes='ünï "quoted"'),
        vm(name=""),
        vm(name=None),
        vm(name=12),
        vm(name="x" * 70, annotation="kept for the custom rule"),
        vm(disks=[]),
        vm(disks=[dict(disk, shared=True, serial="s-1"), dict(disk, rdm=True)]),
        vm(disks=[dict(disk, mode="independent_persistent", bus="nvme", capacity=0)]),
        vm(disks=[dict(disk, capacity=1000, datastore={"id": "", "kind": "Datastore"})]),
        vm(disks=[dict(disk, key=2000 + i) for i in range(170)], diskEnableUuid=True),
        vm(devices=[{"kind": "VirtualPCIPassthrough"}, {"kind": "VirtualSerialPort"}]),
        vm(powerState="suspended", isTemplate=True, connectionState="orphaned"),
        vm(snapshot={"kind": "VirtualMachineSnapshot", "id": "snap-1"}, snapshotCount=40),
        vm(firmware="efi", secureBoot=True, tpmEnabled=True, cpuAffinity=[]),
        vm(nics=[{"mac": "00:50:56:aa", "model": "e1000"}, {"mac": 'a"b', "model": "vmxnet3"}]),
        vm(guestDisks=[{"diskPath": "/", "freeSpace": 1000, "fileSystemType": "btrfs"}]),
        vm(guestId="windows2019srv_64Guest", guestDisks=[{"diskPath": "C:\\", "freeSpace": 5}]),
        vm(hostName="localhost.localdomain", guestNetworks=[]),
    ]
    old_host = vm()
    old_host["host"]["productVersion"] = "6.0.0"
    old_host["host"]["inMaintenance"] = True
    old_host["host"]["cluster"]["dasEnabled"] = True
    old_host["host"]["networking"]["pNICs"] = [{"key": "p0", "linkSpeed": 1000}]
    docs.append(old_host)
    docs += [copy.deepcopy(docs[1]), copy.deepcopy(docs[9]), copy.deepcopy(old_host)]
    return docs


def _same(result: Any) -> Any:
    """A validate document compared whole; its concerns are a set, in any order."""
    if not isinstance(result, dict):
        return result
    concerns = sorted(json.dumps(c, sort_keys=True) for c in result.get("concerns", []))
    return {**result, "concerns": concerns}


@pytest.mark.parametrize("custom", [[], [OUTSIDE], [OUTSIDE, KEYS_AS_DATA], [OUTSIDE, WHOLE]])
def test_the_fast_path_gives_what_a_fresh_interpreter_gives(tmp_path: Path, custom: list) -> None:
    folder = tmp_path / "rules" / "vsphere"
    folder.mkdir(parents=True)
    for n, text in enumerate(custom):
        (folder / f"custom_{n}.rego").write_text(text)
    rs = load_rule_set("vsphere", tmp_path)
    assert not rs.problems and len(rs.custom_files) == len(custom)
    sources = [f.source for f in rs.files]
    tree, keys = input_tree(sources), element_keys(sources)
    if WHOLE in custom:
        assert tree is None
    if KEYS_AS_DATA in custom:
        assert keys is None
    docs = _variants()
    with RegoPool(2, eval_timeout=30) as pool:
        for e in pool.engines:
            e.learn = 6  # the groups most VMs miss are built as one after 6 VMs, midway
        assert compile_rules(pool, rs).ok and all(e.pure for e in pool.engines)
        assert pool.grouped  # evaluated as groups of files, each remembered by what it reads
        fast = list(
            pool.evaluate(
                [json.dumps(project(d, tree, keys), default=str, ensure_ascii=False) for d in docs]
            )
        )
    with RegoEngine(eval_timeout=30) as engine:
        naive = [
            engine.query(rs.modules, validate_query("vsphere"), json.dumps(d, ensure_ascii=False))
            for d in docs
        ]
    assert all(r.ok for r in naive), [r.error for r in naive if not r.ok]
    for doc, a, b in zip(docs, fast, naive, strict=True):
        assert a.ok, a.error
        assert _same(a.result) == _same(b.result), doc.get("name")
    fired = {c["id"] for r in fast for c in r.result["concerns"]}
    assert len(fired) > 30  # the estate trips most shipped rules, not just a few
    if OUTSIDE in custom:
        assert {"custom.nic.e1000", "custom.host.slow_nics", "custom.storage"} <= fired
    if KEYS_AS_DATA in custom:
        assert "custom.serial" in fired
    if WHOLE in custom:
        assert {"custom.annotation", "custom.notes"} <= fired


def test_each_distinct_document_is_evaluated_once_in_order_and_lazily() -> None:
    produced: list[str] = []

    def evaluate(inputs: Sequence[str]) -> Iterator[EvalResult]:
        for x in inputs:
            produced.append(x)
            yield EvalResult(True, x.upper())

    out = once_per_document(["a", "b", "a", "c", "b"], evaluate)
    assert [r.result for r in out] == ["A", "B", "A", "C", "B"]
    assert produced == ["a", "b", "c"]
    produced.clear()
    out = once_per_document(["a", "a", "b", "c"], evaluate)
    assert [next(out).result, next(out).result] == ["A", "A"]
    out.close()  # a caller that stops (too many deadlines) stops the evaluation too
    assert produced == ["a"]


def test_copies_get_the_result_their_original_gets() -> None:
    rs = load_rule_set("vsphere", None)
    docs = [json.dumps(d) for d in _variants()]
    with RegoEngine(eval_timeout=30) as engine:
        assert compile_rules(engine, rs).ok and engine.pure
        once = list(engine.evaluate(docs + docs))
        engine.pure = False  # every copy evaluated on its own
        every = list(engine.evaluate(docs + docs))
    assert len(once) == 2 * len(docs)
    assert [r.result for r in once] == [r.result for r in every]


@pytest.mark.parametrize("call", ["time.now_ns()", 'rand.intn("k", 10)', "http.send({})"])
def test_a_set_whose_verdict_is_not_a_function_of_the_input_evaluates_every_copy(
    call: str,
) -> None:
    assert pure([("a.rego", HEADER + "x := 1\n")])
    assert not pure([("a.rego", HEADER + f"x := {call}\n")])
