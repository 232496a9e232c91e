"""Edits of a user's manifest file that change exactly one line and nothing else.

The reconciler proposes a warm migration's cutover by setting ``spec.cutover`` in the user's
Migration file (on a branch for review). A YAML round trip would re-flow long lines, quotes and
indentation elsewhere in the file; here ruamel only finds where things are, and the text is
changed on one line: the value of an existing ``cutover:`` is replaced, or one ``cutover:``
line is inserted as the first key of ``spec``. Comments, key order and every other byte stay.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap


class EditError(Exception):
    """The file cannot be edited safely; the message names the file and what to do."""


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_cutover(text: str, where: str, namespace: str, name: str, when: datetime) -> str:
    """``text`` with ``spec.cutover: "<when>"`` in the Migration ``namespace/name``."""
    lines = text.splitlines(keepends=True)
    spec = _migration_spec(text, where, namespace, name)
    value = f'"{rfc3339(when)}"'
    if spec.fa.flow_style():
        line = spec.lc.line
        if "cutover" in spec or line != _last_line(spec):
            raise EditError(
                f"{where}:{line + 1}: spec of Migration {namespace}/{name} is a multi-line or "
                "already-set flow mapping: write it in block style to let mtv-gitops propose "
                "a cutover"
            )
        col = lines[line].index("{", spec.lc.col) + 1
        lines[line] = f"{lines[line][:col]}cutover: {value}, {lines[line][col:].lstrip()}"
        return "".join(lines)
    if "cutover" in spec:
        line, col = spec.lc.value("cutover")
        old = lines[line]
        rest = old[col:]
        m = re.match(r'("[^"]*"|\'[^\']*\'|[^\s#]*)', rest)
        end = col + (m.end() if m else 0)
        lines[line] = f"{old[:col]}{value}{old[end:]}"
        return "".join(lines)
    first_key = next(iter(spec), None)
    if first_key is None:
        raise EditError(f"{where}: spec of Migration {namespace}/{name} is empty")
    line, col = spec.lc.key(first_key)
    newline = "\r\n" if lines[line].endswith("\r\n") else "\n"
    lines.insert(line, f"{' ' * col}cutover: {value}{newline}")
    return "".join(lines)


def _migration_spec(text: str, where: str, namespace: str, name: str) -> CommentedMap:
    yaml = YAML(typ="rt")
    try:
        docs = list(yaml.load_all(text))
    except Exception as exc:  # noqa: BLE001 - any parse error: the file is not ours to fix
        raise EditError(f"{where}: not valid YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, CommentedMap) or doc.get("kind") != "Migration":
            continue
        meta = doc.get("metadata") or {}
        if meta.get("name") != name or (meta.get("namespace") or namespace) != namespace:
            continue
        spec = doc.get("spec")
        if not isinstance(spec, CommentedMap):
            raise EditError(f"{where}: Migration {namespace}/{name} has no spec mapping")
        return spec
    raise EditError(f"{where}: no Migration {namespace}/{name} in the file")


def _last_line(node: CommentedMap) -> int:
    """The last line a mapping's keys and values start on (enough for one-line checks)."""
    last = node.lc.line
    for key in node:
        last = max(last, node.lc.key(key)[0], node.lc.value(key)[0])
        value = node[key]
        if isinstance(value, CommentedMap):
            last = max(last, _last_line(value))
    return last
