"""Split a rule set into groups of files that read different parts of a VM document.

Most of a VM's verdict depends on a few fields that many VMs share: its cluster's DRS and HA
settings, its host's version, its firmware, its guest OS. The engine's cost is per query and per
concern built, so a group of files evaluated once per distinct part of the document (many VMs on
one cluster: one evaluation) and remembered saves most of the work; only the groups that read
the VM's own fields (its name, its disks) are evaluated for every VM.

The split keeps the set's meaning: ``validate`` is ``{"rules_version", "errors", "concerns"}``
where ``concerns`` is the union of every ``concerns contains ...`` rule, so the union of the
groups' ``concerns`` is the set's. Files are grouped by the names they define and use: two files
that share a rule name, or one of which uses a rule the other defines, are in one group (and so
see the same rules they see in the whole set). Files that read no input and define none of
``validate``, ``errors`` and ``concerns`` (``text_safe``, the version) are in every group. The
group holding ``validate`` answers the query itself (its errors, version and own concerns); the
others answer ``concerns``. Each group is given its input cut to what its files read
(``projection.py``), so two VMs that agree on those fields share its answer.

A set the split cannot prove equal gives None and is evaluated whole: a verdict that is not a
function of the input, a rule that reads ``concerns`` or ``data`` itself, ``with``, a
``concerns`` that is not a partial set, more than one package, or a query other than
``x = data.<package>.validate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.validation.opa_compat import KEYWORDS, rule_names, tokenize
from reconciler.validation.projection import Tree, element_keys, input_tree

_QUERY = re.compile(r"^x = data\.([\w.]+)\.validate$")
_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.MULTILINE)
_MERGE_POINT = "concerns"  # the one name whose rules every group adds to
_MAIN_NAMES = frozenset({"validate", "errors"})


@dataclass(frozen=True)
class Group:
    """Files evaluated together: their modules (with the files every group needs), the query
    they answer, and what of the input they read (``tree`` None: all of it)."""

    modules: tuple[tuple[str, str], ...]
    query: str
    tree: Tree | None
    keys: frozenset[str] | None
    main: bool  # answers ``validate`` (the others answer ``concerns``)


@dataclass
class _File:
    name: str
    source: str
    defines: set[str]
    uses: set[str]
    reads_input: bool
    heads: list[tuple[str, str]]  # (rule name, the token after it) of each top-level head


def _scan(name: str, source: str) -> _File | None:
    """What one module defines and uses; None when it does something the split cannot follow."""
    toks = tokenize(source)
    uses: set[str] = set()
    reads_input = False
    heads: list[tuple[str, str]] = []
    at_start, depth = True, 0
    prev = None
    for i, t in enumerate(toks):
        if t.kind == "nl":
            at_start = depth == 0
            continue
        if t.kind == "id":
            after_dot = prev is not None and prev.kind == "op" and prev.text == "."
            head = at_start and depth == 0 and t.text not in KEYWORDS
            if head:
                nxt = next((u.text for u in toks[i + 1 :] if u.kind != "nl"), "")
                heads.append((t.text, nxt))
            if t.text in ("data", "with") and not after_dot:
                return None
            if t.text == "import":
                line = source[t.start : source.find("\n", t.start) % (len(source) + 1)]
                if not re.match(r"import\s+(rego\.v1|future\.keywords(\.\w+)?)\s*$", line):
                    return None
            if t.text == "input" and not after_dot:
                reads_input = True
            elif not after_dot and not head and t.text not in KEYWORDS:
                uses.add(t.text)
        if t.kind == "op" and t.text in "([{":
            depth += 1
        elif t.kind == "op" and t.text in ")]}":
            depth = max(0, depth - 1)
        at_start = False if t.text != "default" else at_start
        prev = t
    return _File(name, source, rule_names(source), uses, reads_input, heads)


def split(modules: Sequence[tuple[str, str]], query: str) -> list[Group] | None:
    """The groups of ``modules`` that together answer ``query`` as the whole set does, the
    group answering ``validate`` first; None when the set must be evaluated whole."""
    m = _QUERY.match(query)
    if m is None:
        return None
    package = m.group(1)
    files: list[_File] = []
    for name, source in modules:
        if _PACKAGE.findall(source) != [package]:
            return None
        f = _scan(name, source)
        if f is None:
            return None
        files.append(f)
    # `concerns` only ever as `concerns contains ...`, and read only by `validate`
    for f in files:
        for head, nxt in f.heads:
            if head == _MERGE_POINT and nxt != "contains":
                return None
    if sum(1 for f in files for head, _ in f.heads if head == "validate") != 1:
        return None  # one `validate`, so that its one object is every VM's answer
    readers = [f for f in files if _MERGE_POINT in f.uses]
    if len(readers) != 1 or not _only_validate_reads_concerns(readers[0]):
        return None

    defined_by: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        for n in f.defines - {_MERGE_POINT}:
            defined_by.setdefault(n, []).append(i)
    # files every group needs: no input, none of the merge names, and only such files' rules
    shared = {
        i
        for i, f in enumerate(files)
        if not f.reads_input and not f.defines & (_MAIN_NAMES | {_MERGE_POINT})
    }
    changed = True
    while changed:
        changed = False
        for i in list(shared):
            for n in files[i].uses | files[i].defines:
                if any(j not in shared for j in defined_by.get(n, [i])):
                    shared.discard(i)
                    changed = True
                    break
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, f in enumerate(files):
        if i in shared:
            continue
        for n in (f.uses | f.defines) - {_MERGE_POINT}:
            for j in defined_by.get(n, []):
                if j not in shared:
                    parent[find(i)] = find(j)
    main_root = find(next(i for i, f in enumerate(files) if "validate" in f.defines))
    if not any(_MERGE_POINT in files[i].defines for i in range(len(files)) if find(i) == main_root):
        # `validate` reads `concerns`, so its group needs at least one rule of them
        other = next((i for i, f in enumerate(files) if _MERGE_POINT in f.defines), None)
        if other is None:
            return None
        parent[find(other)] = main_root
    members: dict[int, list[int]] = {}
    for i in range(len(files)):
        if i not in shared:
            members.setdefault(find(i), []).append(i)
    common = [files[i] for i in sorted(shared)]
    groups: list[Group] = []
    for root in sorted(members, key=lambda r: (r != main_root, r)):
        own = [files[i] for i in members[root]]
        if root != main_root and not any(_MERGE_POINT in f.defines for f in own):
            return None  # rules `validate` never reads: whether the engine runs them is its own
        chosen = sorted(own + common, key=lambda f: [x for x, _ in modules].index(f.name))
        sources = [f.source for f in chosen]
        groups.append(
            Group(
                tuple((f.name, f.source) for f in chosen),
                query if root == main_root else f"x = data.{package}.{_MERGE_POINT}",
                input_tree(sources),
                element_keys(sources),
                root == main_root,
            )
        )
    return groups


def _only_validate_reads_concerns(f: _File) -> bool:
    """True when the file's one use of ``concerns`` is the ``"concerns": concerns`` member of
    the object ``validate`` is (a count of the concerns, say, would see only its group's)."""
    toks = [t for t in tokenize(f.source)]
    head, depth, spots = -1, 0, []
    at_start = True
    for i, t in enumerate(toks):
        if t.kind == "nl":
            at_start = depth == 0
            continue
        if at_start and depth == 0 and t.kind == "id":
            head = i
        at_start = False
        if t.kind == "op" and t.text in "([{":
            depth += 1
        elif t.kind == "op" and t.text in ")]}":
            depth = max(0, depth - 1)
        elif t.kind == "id" and t.text == _MERGE_POINT and toks[head].text != _MERGE_POINT:
            spots.append((head, i, depth))
    if len(spots) != 1:
        return False
    head, i, depth = spots[0]
    code = [t.text for t in toks if t.kind != "nl"]
    at = i - sum(1 for t in toks[:i] if t.kind == "nl")
    start = head - sum(1 for t in toks[:head] if t.kind == "nl")
    return (
        code[start : start + 3] == ["validate", ":=", "{"]
        and depth == 1
        and code[at - 2 : at] == ['"concerns"', ":"]
        and at + 1 < len(code)
        and code[at + 1] in (",", "}")
    )


def merge(groups: Sequence[Group]) -> Group:
    """One group doing the work of ``groups``: their files together (the union of their
    ``concerns`` is then the engine's own), answering ``validate`` if one of them did."""
    modules: dict[str, str] = {}
    for g in groups:
        modules.update(g.modules)
    main = next((g for g in groups if g.main), None)
    query = main.query if main else groups[0].query
    sources = list(modules.values())
    return Group(
        tuple(modules.items()), query, input_tree(sources), element_keys(sources), bool(main)
    )
