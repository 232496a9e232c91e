"""Hand the engine only the parts of a VM document that the rules read.

rego-cpp parses the whole input for every query and looks keys up by scanning objects, so a
vSphere document with its host's networking costs more to pass in than the rules cost to run.
The rule sources say what they read: each ``input.a.b`` (or ``input["a"]``) chain keeps the
subtree under its last fixed key, and ``object.filter(input.a, ["x", "y"])`` keeps ``a.x`` and
``a.y``. Anything else that takes ``input`` whole (``input[k]``, ``walk(input)``, passing it to a
function) turns projection off for the set: the engine then gets the full document.

Inside the arrays kept (a VM's disks, devices, guest file systems), objects keep only the keys
some rule names: any ``.key`` or string literal in the sources. Rules that look at an object's
keys as data (``some k, v in x``, ``object.keys``, ``walk``, ``json.marshal`` ...) turn that off.
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
_DOT_KEY = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_KEYS_AS_DATA = re.compile(
    r"some\s+\w+\s*,\s*\w+\s+in\b|\b(object\.(keys|remove|union|union_n)|walk|json\.(marshal|filter|remove|patch)|"
    r"yaml\.marshal)\s*\("
)


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


def element_keys(sources: Iterable[str]) -> frozenset[str] | None:
    """Every key a rule can name, or None when a rule may read keys it does not name."""
    keys: set[str] = set()
    for source in sources:
        code = _TOKEN.sub(lambda m: " " if m.group("com") else m.group(0), source)
        if _KEYS_AS_DATA.search(_TOKEN.sub(lambda m: '""' if m.group("str") else m.group(0), code)):
            return None
        keys.update(_DOT_KEY.findall(code))
        keys.update(m.group(1) for m in _KEY.finditer(code))
    return frozenset(keys)


def cut_elements(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with the objects inside its arrays cut to ``keys`` (what ``project`` does to
    a kept field)."""
    if isinstance(value, list):
        return [_named(x, keys) for x in value]
    if isinstance(value, dict):
        return {k: cut_elements(v, keys) for k, v in value.items()}
    return value


def _named(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _named(v, keys) for k, v in value.items() if k in keys}
    if isinstance(value, list):
        return [_named(x, keys) for x in value]
    return value


def project(doc: Any, tree: Tree | None, keys: frozenset[str] | None = None) -> Any:
    """``doc`` cut down to ``tree`` (None: the whole document); objects inside kept arrays cut
    to ``keys`` (None: whole)."""
    if tree is None or not isinstance(doc, dict):
        return doc
    out = {}
    for key, sub in tree.items():
        if key in doc:
            value = doc[key]
            if sub and isinstance(value, dict):
                out[key] = project(value, sub, keys)
            else:
                out[key] = value if keys is None else cut_elements(value, keys)
    return out
