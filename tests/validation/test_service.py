"""Rule sets in force, rejected sets, versioning and re-validation of only what changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore
from reconciler.validation.bump import bump
from reconciler.validation.service import FAILED_ID, Validator
from tests.support.rules_data import multiple_disks_rule

HEADER = "package io.konveyor.forklift.ova\n\nimport rego.v1\n\n"
DEFAULTS = {
    "rules_version.rego": HEADER
    + 'RULES_VERSION := 1\n\nrules_version := {"rules_version": RULES_VERSION}\n',
    "validate.rego": HEADER
    + "default valid_input := false\n\nvalid_input if input.name\n\n"
    + 'validate := {"rules_version": RULES_VERSION, "errors": errors, "concerns": concerns}\n\n'
    + 'errors contains "No VM name found in input body" if not valid_input\n',
    "usb.rego": HEADER
    + 'concerns contains flag if {\n\tsome d in input.devices\n\td.kind == "USB"\n'
    + '\tflag := {"id": "ova.usb", "category": "Warning", "label": "USB controller",'
    + ' "assessment": "Remove it."}\n}\n',
}
# the MTV 2.4 docs' custom rule (Rego v0), Critical and with an id
MULTI_DISK_V0 = multiple_disks_rule("Critical")
VMS = {
    "vm-1": {"name": "one", "disks": [1], "devices": [{"kind": "USB"}]},
    "vm-2": {"name": "two", "disks": [1, 2]},
    "vm-3": {"name": "three", "disks": []},
}


@pytest.fixture
def env(tmp_path: Path):
    defaults = tmp_path / "defaults"
    (defaults / "ova").mkdir(parents=True)
    for name, text in DEFAULTS.items():
        (defaults / "ova" / name).write_text(text)
    repo = tmp_path / "repo"
    (repo / "rules" / "ova").mkdir(parents=True)
    store = ProgressStore(tmp_path / "state" / "progress.db")
    v = Validator(store, eval_timeout=2.0, defaults=defaults)
    yield v, repo, defaults, store
    v.close()
    store.close()


def ids(verdicts, vm_id: str) -> set[str]:
    return {c.get("id", c["label"]) for c in verdicts[vm_id].concerns}


def fresh(verdicts) -> set[str]:
    return {k for k, v in verdicts.items() if v.fresh}


def test_defaults_then_custom_rule_added_changed_and_bumped(env) -> None:
    v, repo, defaults, _ = env
    state = v.prepare("ova", repo)
    assert (state.version, state.in_use, state.errors) == (1, "defaults", [])
    first = v.validate("ns/p", "ova", VMS)
    assert ids(first, "vm-1") == {"ova.usb"} and ids(first, "vm-2") == set()
    assert fresh(v.validate("ns/p", "ova", VMS)) == set()  # nothing changed: nothing evaluated

    # a custom rule as the MTV docs write it: read as the set it means, OR-ed with the defaults
    (repo / "rules/ova/multi.rego").write_text(MULTI_DISK_V0)
    state = v.prepare("ova", repo)
    assert state.errors == [] and state.custom_files == ["rules/ova/multi.rego"]
    assert state.in_use == "defaults + repo"
    assert any("multi.rego:7: Rego v0 `concerns[flag] {`" in w for w in state.warnings)
    assert any("changed without a rules_version bump (still 1" in w for w in state.warnings)
    second = v.validate("ns/p", "ova", VMS)
    assert fresh(second) == set(VMS)  # the rule set changed: every VM again
    assert ids(second, "vm-2") == {"custom.multiple-disks"}
    assert second["vm-2"].concerns[0]["category"] == "Critical"

    # bumped: a new version, no warning
    done = bump(repo, "ova", defaults)
    assert (done.old, done.new, done.created) == (1, 2, True)
    state = v.prepare("ova", repo)
    assert state.version == 2
    assert not any("bump" in w for w in state.warnings)
    assert any("defaults/ova/rules_version.rego is replaced" in n for n in state.notes)
    assert fresh(v.validate("ns/p", "ova", VMS)) == set(VMS)


def test_only_vms_whose_document_changed_are_validated_again(env) -> None:
    v, repo, _, _ = env
    v.prepare("ova", repo)
    v.validate("ns/p", "ova", VMS)
    changed = dict(VMS, **{"vm-3": {"name": "three", "devices": [{"kind": "USB"}]}})
    again = v.validate("ns/p", "ova", changed)
    assert fresh(again) == {"vm-3"}
    assert ids(again, "vm-3") == {"ova.usb"}
    assert fresh(v.validate("ns/other", "ova", VMS)) == set(VMS)  # records are per provider


def test_a_broken_set_is_rejected_and_the_last_good_set_goes_on(env, tmp_path: Path) -> None:
    v, repo, defaults, store = env
    (repo / "rules/ova/multi.rego").write_text(MULTI_DISK_V0)
    v.prepare("ova", repo)
    v.validate("ns/p", "ova", VMS)
    (repo / "rules/ova/broken.rego").write_text(HEADER + "concerns contains f if {\n")
    state = v.prepare("ova", repo)
    assert state.in_use == "last good"
    assert len(state.errors) == 1
    assert state.errors[0].startswith("rule file rejected")
    assert "rules/ova/broken.rego:" in state.errors[0] and "unclosed" in state.errors[0]
    # the last good set (with the custom rule) still validates
    assert ids(v.validate("ns/p", "ova", VMS), "vm-2") == {"custom.multiple-disks"}

    # a restarted reconciler keeps the last good set too
    v2 = Validator(store, eval_timeout=2.0, defaults=defaults)
    try:
        assert v2.prepare("ova", repo).in_use == "last good"
        assert ids(v2.validate("ns/q", "ova", VMS), "vm-2") == {"custom.multiple-disks"}
    finally:
        v2.close()


def test_a_rule_that_conflicts_with_the_defaults_is_named(env) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/valid.rego").write_text(HEADER + "default valid_input := true\n")
    state = v.prepare("ova", repo)
    assert state.in_use == "defaults"  # no good set recorded yet: the shipped defaults
    assert "rules/ova/valid.rego" in state.errors[0]
    assert (
        "`default valid_input` is already declared in defaults/ova/validate.rego"
        in (state.errors[0])
    )
    assert ids(v.validate("ns/p", "ova", VMS), "vm-1") == {"ova.usb"}


def test_a_v1_file_with_a_v0_head_is_refused_before_compiling(env) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/mixed.rego").write_text(HEADER + 'concerns[f] {\n  f := {"id": "x"}\n}\n')
    state = v.prepare("ova", repo)
    assert state.errors == [
        "rules/ova/mixed.rego:5: `concerns[f] {` is a Rego v0 rule head in a file that imports "
        "rego.v1; write the partial set rule as `concerns contains f if {`"
    ]


def test_a_rule_that_loops_or_throws_leaves_the_other_vms_validated(env) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/loop.rego").write_text(
        HEADER
        + 'concerns contains {"id": "slow", "category": "Warning", "label": "s"} if {\n'
        + '  input.name == "two"\n  count([x | some x in numbers.range(1, 100000000)]) > 0\n}\n'
    )
    (repo / "rules/ova/throw.rego").write_text(
        HEADER + 'concerns contains {"id": "t", "category": "Warning", "label": "t"} if'
        ' {\n  input.name == "three"\n  1 / 0 > 0\n}\n'
    )
    state = v.prepare("ova", repo)
    assert state.errors == []
    out = v.validate("ns/p", "ova", VMS)
    assert ids(out, "vm-1") == {"ova.usb"}
    assert ids(out, "vm-2") == {FAILED_ID}
    assert "did not finish within 2 s" in out["vm-2"].concerns[0]["assessment"]
    assert FAILED_ID not in ids(out, "vm-3")  # a division by zero is undefined, as in OPA


def test_bad_categories_are_reported_and_shown_as_warnings(env) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/cat.rego").write_text(
        HEADER + 'concerns contains {"label": "Multiple disks", "category": "<Information>"} if '
        "count(input.disks) > 1\n"
        'concerns contains {"label": "Odd", "category": "Severe"} if input.name == "two"\n'
    )
    v.prepare("ova", repo)
    out = v.validate("ns/p", "ova", VMS)
    cats = {c["label"]: c["category"] for c in out["vm-2"].concerns}
    assert cats == {"Multiple disks": "Information", "Odd": "Warning"}
    warnings = v.state("ova").warnings
    assert "concern 'Multiple disks' has category '<Information>'; write 'Information'" in warnings
    assert any("'Severe'; expected one of Critical, Warning, Information" in w for w in warnings)


def test_bump_edits_only_the_number(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "rules/vsphere").mkdir(parents=True)
    text = "package io.konveyor.forklift.vmware\n\n# ours\nRULES_VERSION := 41 # keep\n"
    (repo / "rules/vsphere/rules_version.rego").write_text(text)
    done = bump(repo, "vsphere")
    assert (done.old, done.new, done.created) == (41, 42, False)
    assert done.path.read_text() == text.replace("41", "42")


def test_a_rules_version_that_is_not_a_number_is_rejected_and_named(env) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/rules_version.rego").write_text(
        HEADER + 'RULES_VERSION := "two"\n\nrules_version := {"rules_version": RULES_VERSION}\n'
    )
    state = v.prepare("ova", repo)
    assert state.in_use == "defaults" and state.version == 1
    assert "rules/ova/rules_version.rego" in state.errors[0]
    assert 'with a whole number N (found ["two"])' in state.errors[0]


@pytest.mark.parametrize(
    "rule",
    [
        # two rules giving one complete value different values
        'conflict := 1 if input.name == "two"\nconflict := 2 if input.name == "two"\n'
        'concerns contains {"id": "c", "category": "Warning", "label": "c", "assessment": "a"}'
        " if conflict\n",
        # `validate` defined again by a repo file
        'validate := {"rules_version": 1, "errors": [], "concerns": []} if input.name == "two"\n',
    ],
    ids=["conflicting-values", "redefined-validate"],
)
def test_a_vm_whose_evaluation_fails_is_critical(env, rule: str) -> None:
    v, repo, _, _ = env
    (repo / "rules/ova/bad.rego").write_text(HEADER + rule)
    assert v.prepare("ova", repo).errors == []
    out = v.validate("ns/p", "ova", VMS)
    assert ids(out, "vm-1") == {"ova.usb"}  # the others are validated as before
    [failed] = out["vm-2"].concerns
    assert (failed["id"], failed["category"]) == (FAILED_ID, "Critical")
