"""OPA's documented results, through our loader and regopy (cases.yaml says where OPA says so).

Each case's module is read as a rule file is (v0 heads upgraded, the shapes regopy misreads
rewritten) and evaluated by the engine; the result must be OPA's. Where a case records what
regopy gives for the text as written (``regopy``), that is checked too, so the list of
divergences stays true when the engine changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.validation.engine import RegoEngine
from reconciler.validation.ruleset import as_opa_reads, read_source

CASES = YAML(typ="safe").load((Path(__file__).parent / "cases.yaml").read_text())
QUERY = "x = [v | v := data.t.p]"  # undefined gives [] (a plain query of it aborts rego-cpp)


@pytest.fixture(scope="module")
def engine():
    with RegoEngine(eval_timeout=30) as eng:
        yield eng


def _module(case: dict[str, Any]) -> str:
    head = "package t\n" if case.get("v0") else "package t\n\nimport rego.v1\n\n"
    return head + case["rule"]


def _outcome(engine: RegoEngine, modules: list[tuple[str, str]], doc: Any) -> Any:
    """Compiled once and evaluated per input, as VMs are validated."""
    if not engine.build(modules, QUERY).ok:
        return "error"
    (res,) = engine.evaluate([json.dumps(doc)])
    if not res.ok:
        return "error"
    return res.result[0] if res.result else "undefined"


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731 - sets come back sorted
        return got == want or sorted(got, key=key) == sorted(want, key=key)
    return got == want


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_opa_result(case: dict[str, Any], engine: RegoEngine) -> None:
    assert case.get("doc"), "every case cites where OPA documents its result"
    problems: list[str] = []
    files, _ = as_opa_reads([read_source("t.rego", _module(case))], [], problems)
    if case["expect"] == "refused":
        assert problems and problems[0].startswith("t.rego:")
        return
    assert problems == []
    got = _outcome(engine, [(f.name, f.source) for f in files], case.get("input", {}))
    assert _same(got, case["expect"]), f"OPA gives {case['expect']!r}, we give {got!r}"
    if case.get("fix") == "rewrite":
        assert any(rw.kind == "opa" for f in files for rw in f.rewrites)


@pytest.mark.parametrize("case", [c for c in CASES if "regopy" in c], ids=lambda c: c["name"])
def test_regopy_alone_still_diverges(case: dict[str, Any], engine: RegoEngine) -> None:
    """The divergence the rewrite exists for is still there in the engine we ship."""
    got = _outcome(engine, [("t.rego", read_source("t.rego", _module(case)).source)], case["input"])
    want = case["regopy"]
    if isinstance(want, str) and want.startswith("compile error"):
        assert got == "error"
    else:
        assert _same(got, want)
