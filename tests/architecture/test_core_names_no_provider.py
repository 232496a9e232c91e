"""The core (``reconciler/``) names no source provider: what a provider is and can do comes from
its plugin (``reconciler/hookspecs.py``), so a new source is a package, not a core edit.

Every string literal (docstrings aside: prose may give a provider as an example) and every
identifier in ``reconciler/`` is searched for provider names; a hit fails, naming file and line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "reconciler"
PROVIDER = re.compile(r"vsphere|vmware|ovirt|openstack|pyvmomi|\bova\b|esxi|vcenter", re.I)

# literals that match but are not provider knowledge, each with why
ALLOWED = {
    # Kubernetes storage provisioners in the MTV docs' table of volume and access modes per
    # provisioner (targets: PVC defaults on the destination cluster): the names of CSI drivers,
    # not of source providers
    # (reconciler/targets: kubernetes.io/vsphere-volume is the in-tree vSphere volume plugin of
    # a cluster that runs on vSphere; manila.csi.openstack.org the Manila CSI driver)
    "kubernetes.io/vsphere-volume",
    "manila.csi.openstack.org",
}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
    elif isinstance(node, ast.arg):
        yield node.arg
    elif isinstance(node, ast.alias):
        yield node.name
        if node.asname:
            yield node.asname
    elif isinstance(node, ast.ImportFrom) and node.module:
        yield node.module
    elif isinstance(node, ast.keyword) and node.arg:
        yield node.arg


def provider_names_in(source: str, rel: str) -> list[str]:
    """``file:line: text`` for each literal or identifier of ``source`` that names a provider."""
    tree = ast.parse(source, rel)
    skip = _docstrings(tree)
    hits: list[str] = []
    for node in ast.walk(tree):
        texts: list[str] = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if node.value not in ALLOWED:
                texts.append(node.value)
        texts += list(_names(node))
        for text in texts:
            if PROVIDER.search(text):
                hits.append(f"{rel}:{getattr(node, 'lineno', '?')}: {text[:80]!r}")
    return hits


def test_the_core_names_no_source_provider() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 50  # the scan sees the core
    hits = [
        hit
        for path in files
        for hit in provider_names_in(path.read_text(), str(path.relative_to(CORE.parent)))
    ]
    assert hits == [], "provider knowledge in reconciler/ (it belongs in a plugin):\n" + "\n".join(
        hits
    )


def test_the_scan_finds_a_comparison_and_an_identifier() -> None:
    """The scan itself works: it sees what it must refuse, and lets prose and the allowed
    provisioner names pass."""
    source = (
        '"""Works with vSphere (prose)."""\n'
        "def f(t):\n"
        '    """Says vSphere, too."""\n'
        '    return t == "vsphere"\n'
        "PER_HOST_OVIRT = 1\n"
        'TABLE = {"kubernetes.io/vsphere-volume": 1}\n'
        'HELP = f"from {t} OVA files"\n'
    )
    hits = provider_names_in(source, "probe.py")
    assert sorted(h.split(": ", 1)[0] for h in hits) == ["probe.py:4", "probe.py:5", "probe.py:7"]
