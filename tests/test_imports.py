"""Test modules share helpers only through ``tests/support`` (or conftest fixtures), and the
benchmarks and the test peers (``testpeers/``) import nothing from the tests: moving or deleting
one test never breaks another."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_test_modules_import_helpers_only_from_tests_support() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for name in _imported(path)
        if (name == "tests" or name.startswith("tests."))
        and not (name == "tests.support" or name.startswith("tests.support."))
    ]
    assert wrong == []


@pytest.mark.parametrize("folder", ["bench", "testpeers"])
def test_benchmarks_and_test_peers_import_nothing_from_the_tests(folder: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imported(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert wrong == []
