"""Hand the engine only the parts of a VM document that the rules read.

rego-cpp parses the whole input for every query and looks keys up by scanning objects, so a
vSphere document with its host's networking costs more to pass in than the rules cost to run.
The rule sources say what they read: each ``input.a.b`` (or ``input["a"]``) chain keeps the
subtree under its last fixed key, and ``object.filter(input.a, ["x", "y"])`` keeps ``a.x`` and
``a.y``. Anything else that takes ``input`` whole (``input[k]``, ``walk(input)``, passing it to a
function) turns projection off for the set: the engine then gets the full document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_TOKEN = re.compile(
    r'(?P<str>"(?:\\.|[^"\\])*"|`[^`]*`)|(?P<com>#[^\n]*)|(?<![\w.])(?P<inp>input)(?!\w)'
)
_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"((?:\\.|[^"\\])*)"\s*\]')
_KEYS = re.compile(r'\s*,\s*\[((?:\s*"(?:\\.|[^"\\])*"\s*,?)*)\s*\]\s*,?\s*\)')
_KEY = re.compile(r'"((?:\\.|[^"\\])*)"')
# whole-input uses that look at its type only, not its content
_TYPE_ONLY = ("is_object(", "type_name(")

Tree = dict[str, Any]  # key -> subtree; an empty dict means "keep everything below"


def _chain(source: str, pos: int) -> tuple[list[str], int]:
    keys = []
    while m := _STEP.match(source, pos):
        keys.append(m.group(1) if m.group(1) is not None else m.group(2))
        pos = m.end()
    return keys, pos


def input_tree(sources: Iterable[str]) -> Tree | None:
    """The parts of ``input`` the sources read, or None when they may read all of it."""
    paths: list[list[str]] = []
    for source in sources:
        for m in _TOKEN.finditer(source):
            if not m.group("inp"):
                continue
            keys, end = _chain(source, m.end())
            before = source[: m.start()].rstrip()
            if before.endswith("object.filter("):
                listed = _KEYS.match(source, end)
                if listed is None:
                    return None
                paths += [[*keys, k] for k in _KEY.findall(listed.group(1))]
                continue
            if not keys:
                if before.endswith(_TYPE_ONLY) and source[end:].lstrip().startswith(")"):
                    continue
                return None
            paths.append(keys)
    tree: Tree = {}
    for path in sorted(paths, key=len):
        node = tree
        for i, key in enumerate(path):
            if key in node and not node[key]:
                break  # a shorter path keeps this whole subtree already
            node = node.setdefault(key, {})
            if i == len(path) - 1:
                node.clear()  # a leaf: keep all of it
    return tree


def project(doc: Any, tree: Tree | None) -> Any:
    """``doc`` cut down to ``tree`` (None: the whole document)."""
    if tree is None or not isinstance(doc, dict):
        return doc
    out = {}
    for key, sub in tree.items():
        if key in doc:
            value = doc[key]
            out[key] = project(value, sub) if sub and isinstance(value, dict) else value
    return out
