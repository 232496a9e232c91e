"""YAML parse errors told without the values they were parsing.

ruamel's messages quote what they read: a duplicate key comes with both of its values, a bad
escape with the character, a wrong tag with the scalar. A parse error happens before anyone
knows whether the document was a Secret, so every message made here quotes positions and keys
only: status, logs and ``lint`` output are read by more people than the secrets are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

_DUPLICATE = re.compile(r'found duplicate key "(?P<key>.*?)" with value ')
# what ruamel quotes that is syntax, not content: "',' or ']'", "'<stream end>'"
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_SYNTAX = re.compile(r"[\W_]{1,3}|<[a-z ]+>")


@dataclass(frozen=True)
class YamlProblem:
    """Where a YAML text stopped parsing (1-based; 0 when unknown) and why, with no values."""

    line: int
    column: int
    message: str

    def where(self) -> str:
        return f"line {self.line}, column {self.column}" if self.line else "unknown position"


def describe(exc: BaseException) -> YamlProblem:
    """A value-free account of any exception raised while loading YAML."""
    if isinstance(exc, DuplicateKeyError):
        mark = exc.problem_mark
        found = _DUPLICATE.search(exc.problem or "")
        key = f' "{found["key"]}"' if found else ""
        first = exc.context_mark
        also = f" (first at line {first.line + 1})" if first else ""
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return YamlProblem(line, col, f"duplicate key{key}{also}")
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "invalid YAML"
        return YamlProblem(line, col, _unquote_content(problem))
    # a scalar that its tag cannot convert (``!!int abc``), a bad encoding, and the like: the
    # exception's text holds the scalar, so only its kind is told
    return YamlProblem(0, 0, f"a value that YAML cannot read ({type(exc).__name__})")


def _unquote_content(problem: str) -> str:
    def keep_syntax(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        return m.group(0) if _SYNTAX.fullmatch(inner) else "'…'"

    return _QUOTED.sub(keep_syntax, problem)
