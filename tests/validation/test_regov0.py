"""Rego v0 partial-set heads, as the MTV 2.4 docs write them, are read as the sets they mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.validation.regov0 import RegoSyntaxError, upgrade

# the MTV 2.4 docs' custom rule as printed there (Rego v0), in the OVA package
DOCS_EXAMPLE = (Path(__file__).parent / "data" / "mtv_docs_multiple_disks.rego").read_text()


def test_the_docs_example_becomes_a_partial_set_on_the_same_line() -> None:
    source, rewrites = upgrade(DOCS_EXAMPLE)
    lines = source.splitlines()
    assert lines[6] == "concerns contains flag if {"
    assert len(lines) == len(DOCS_EXAMPLE.splitlines())  # engine line numbers stay true
    assert [(r.line, r.before, r.after) for r in rewrites] == [
        (7, "concerns[flag] {", "concerns contains flag if {")
    ]
    assert "has_multiple_disks {" in source  # boolean heads are read right already


def test_brackets_in_strings_comments_and_bodies_are_not_heads() -> None:
    src = (
        "package p\n"
        "# deny[x] { in a comment\n"
        'msg := "deny[x] {"\n'
        "r {\n  x[y] { true }\n}\n"
        "obj[k] = v { k := 1; v := 2 }\n"
        'deny[sprintf("%v", [input.a])] { true }\n'
    )
    source, rewrites = upgrade(src)
    assert [r.line for r in rewrites] == [8]
    assert 'deny contains sprintf("%v", [input.a]) if { true }' in source
    assert "obj[k] = v { k := 1; v := 2 }" in source  # an object rule stays one


def test_a_v1_file_with_a_v0_head_is_refused_with_the_v1_form() -> None:
    src = "package p\nimport rego.v1\n\nconcerns[flag] {\n  flag := 1\n}\n"
    with pytest.raises(RegoSyntaxError) as exc:
        upgrade(src)
    assert exc.value.line == 4
    assert "write the partial set rule as `concerns contains flag if {`" in str(exc.value)


def test_v1_files_are_left_alone() -> None:
    src = "package p\nimport rego.v1\nconcerns contains f if {\n f := 1\n}\no[k] if { k := 1 }\n"
    assert upgrade(src) == (src, [])
