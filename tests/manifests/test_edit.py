"""One-line edits of a user's Migration file: spec.cutover set, every other byte kept."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime

import pytest
from ruamel.yaml import YAML

from reconciler.manifests.edit import EditError, set_cutover

WHEN = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
DOC = """\
# Warm migration of the web tier: cutover after the reviewers agree.
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata:
  name: web-warm   # the first attempt
  namespace: openshift-mtv
spec:
    # four-space indent, kept
    plan:
        name: web    # the plan
        namespace: openshift-mtv
    cancel: [ {name: old-vm} ]
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {name: other, namespace: openshift-mtv}
spec: {plan: {name: other}}
"""


def changed(old: str, new: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_cutover_is_one_inserted_line_in_the_right_document() -> None:
    new = set_cutover(DOC, "migrations/web.yaml", "openshift-mtv", "web-warm", WHEN)
    assert changed(DOC, new) == ['+    cutover: "2026-11-26T22:00:00Z"']
    docs = list(YAML(typ="safe").load_all(new))
    assert docs[0]["spec"]["cutover"] == "2026-11-26T22:00:00Z"
    assert docs[0]["spec"]["plan"] == {"name": "web", "namespace": "openshift-mtv"}
    assert "cutover" not in docs[1]["spec"]


def test_an_existing_cutover_value_is_replaced_in_place_with_its_comment() -> None:
    text = DOC.replace("    plan:\n", "    cutover: 2026-12-01T00:00:00Z  # agreed\n    plan:\n", 1)
    new = set_cutover(text, "m.yaml", "openshift-mtv", "web-warm", WHEN)
    assert changed(text, new) == [
        "-    cutover: 2026-12-01T00:00:00Z  # agreed",
        '+    cutover: "2026-11-26T22:00:00Z"  # agreed',
    ]


def test_a_one_line_flow_spec_gets_the_key_on_the_same_line() -> None:
    new = set_cutover(DOC, "m.yaml", "openshift-mtv", "other", WHEN)
    assert changed(DOC, new) == [
        "-spec: {plan: {name: other}}",
        '+spec: {cutover: "2026-11-26T22:00:00Z", plan: {name: other}}',
    ]
    assert list(YAML(typ="safe").load_all(new))[1]["spec"]["plan"] == {"name": "other"}


def test_crlf_files_keep_their_line_ends() -> None:
    text = DOC.replace("\n", "\r\n")
    new = set_cutover(text, "m.yaml", "openshift-mtv", "web-warm", WHEN)
    assert new.count("\r\n") == text.count("\r\n") + 1 and "\r\r" not in new


def test_missing_migration_or_bad_yaml_names_the_file() -> None:
    with pytest.raises(EditError, match="m.yaml: no Migration openshift-mtv/nope"):
        set_cutover(DOC, "m.yaml", "openshift-mtv", "nope", WHEN)
    with pytest.raises(EditError, match="m.yaml: not valid YAML"):
        set_cutover("a: [", "m.yaml", "openshift-mtv", "x", WHEN)
