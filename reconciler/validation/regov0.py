"""Read Rego v0 partial-set rules the way their authors meant them.

The MTV 2.4 docs write custom rules in Rego v0: ``concerns[flag] { ... }`` with no
``import rego.v1``. In v0 that is a partial *set* rule. regopy 1.5.2 (rego-cpp) reads the same
text as an *object* rule (``concerns[flag] := true``), and beside the default rules' v1
``concerns contains flag if`` the whole set then fails to compile. So, before a module reaches the
engine:

- a file without ``import rego.v1`` is v0: each top-level ``name[term] {`` (or ``name[term] if {``)
  head is rewritten in place to ``name contains term if {``, and the rewrite is reported so the
  author sees the v1 form;
- a file with ``import rego.v1`` that still writes ``name[term] {`` is refused (OPA v1 refuses it
  too), with the v1 form in the message.

Rewrites stay on the same line, so the engine's line numbers still point into the user's file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_V1_IMPORT = re.compile(r"^\s*import\s+rego\.v1\s*(#.*)?$", re.MULTILINE)
_HEAD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[")


@dataclass(frozen=True)
class Rewrite:
    line: int  # 1-based
    before: str
    after: str
    kind: str = "v0"  # v0: a v0 head read as v1; opa: bound first as OPA evaluates it


class RegoSyntaxError(ValueError):
    """A rule head we will not guess at; the message shows the v1 form."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def is_v1(source: str) -> bool:
    return bool(_V1_IMPORT.search(source))


def _top_level_line_starts(source: str) -> list[int]:
    """Offsets of lines that begin outside any bracket, string or comment."""
    starts, depth, i, n = [0], 0, 0, len(source)
    while i < n:
        c = source[i]
        if c == "#":
            while i < n and source[i] != "\n":
                i += 1
            continue
        if c == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
        elif c == "`":
            i += 1
            while i < n and source[i] != "`":
                i += 1
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth = max(0, depth - 1)
        elif c == "\n" and depth == 0:
            starts.append(i + 1)
        i += 1
    return starts


def _closing_bracket(line: str, start: int) -> int:
    """Index of the ``]`` that closes the ``[`` at ``start - 1``, or -1."""
    depth, i = 1, start
    while i < len(line):
        c = line[i]
        if c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
        elif c in "[({":
            depth += 1
        elif c in "])}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def upgrade(source: str) -> tuple[str, list[Rewrite]]:
    """The source with v0 partial-set heads in v1 form, and what was rewritten.

    Raises RegoSyntaxError for a v1 file that uses the v0 head (it would be misread).
    """
    v1 = is_v1(source)
    rewrites: list[Rewrite] = []
    out: list[str] = []
    prev = 0
    for start in _top_level_line_starts(source):
        end = source.find("\n", start)
        end = len(source) if end < 0 else end
        line = source[start:end]
        m = _HEAD.match(line)
        if not m or m.group(1) in ("package", "import", "default"):
            continue
        close = _closing_bracket(line, m.end())
        if close < 0:
            continue
        rest = line[close + 1 :]
        tail = re.match(r"\s*(if\s*)?\{", rest)
        if not tail:
            continue  # p[k] = v { ... }, p[x] := ..., p[x] contains ...: not a partial set head
        term = line[m.end() : close].strip()
        v1_head = f"{m.group(1)} contains {term} if {{"
        if v1:
            if tail.group(1):
                continue  # v1 `p[x] if {` is an object rule, as OPA v1 reads it
            raise RegoSyntaxError(
                len(source[:start].splitlines()) + 1,
                f"`{line.strip()}` is a Rego v0 rule head in a file that imports rego.v1; "
                f"write the partial set rule as `{v1_head}`",
            )
        new_line = line[: m.start()] + v1_head + rest[tail.end() :]
        out.append(source[prev:start] + new_line)
        prev = end
        rewrites.append(Rewrite(len(source[:start].splitlines()) + 1, line.strip(), v1_head))
    out.append(source[prev:])
    return "".join(out), rewrites
