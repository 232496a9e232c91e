"""Read every YAML document of the repo (outside ``status/``) into typed objects.

Errors never stop the load: each names file:line:column, and only the object it concerns is
left out, so one bad file cannot hold up the other plans.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.manifests.config import CONFIG_FILE, RepoConfig
from reconciler.manifests.errors import Location, ManifestError
from reconciler.manifests.models import API_VERSION, SPECS, ObjectMeta, SecretManifest
from reconciler.secrets.yaml_errors import describe as describe_yaml_error

SKIP_DIRS = {"status", ".git"}
YAML_SUFFIXES = {".yaml", ".yml"}
Key = tuple[str, str]  # (namespace, name)
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
SECRET_TOP_LEVEL = {"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}
EMPTY_MAPPING_TYPES = {"model_type", "dict_type", "model_attributes_type"}


@dataclass
class Manifest:
    """One valid object of the desired state and where it came from."""

    kind: str
    meta: ObjectMeta
    spec: Any
    location: Location
    doc: CommentedMap = field(repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace or ""

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass
class Desired:
    """The whole desired state: valid objects by kind and key, and every error found."""

    objects: dict[str, dict[Key, Manifest]] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)
    broken: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, ns, name)

    def of(self, kind: str) -> dict[Key, Manifest]:
        return self.objects.setdefault(kind, {})

    def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        return self.of(kind).get((namespace, name))


def yaml_files(root: Path) -> Iterator[Path]:
    """Every YAML file under root except status/, .git and dot-folders, in a stable order.

    Skipped folders are pruned, not walked: ``.git`` alone can hold thousands of files."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        top = Path(folder) == root
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (top and d in SKIP_DIRS)]
        found += [
            Path(folder) / f
            for f in files
            if not f.startswith(".") and Path(f).suffix in YAML_SUFFIXES
        ]
    yield from sorted(found)


def load_repo(root: Path, config: RepoConfig) -> Desired:
    """Load and type-check every manifest of the repo."""
    desired = Desired()
    for path in yaml_files(root):
        rel = str(path.relative_to(root))
        if rel == CONFIG_FILE:
            continue
        for doc, loc in _documents(path, rel, desired.errors):
            _load_object(doc, loc, config, desired)
    return desired


def _documents(path: Path, rel: str, errors: list[ManifestError]) -> Iterator[tuple[Any, Location]]:
    yaml = YAML(typ="rt")
    try:
        text = path.read_text(encoding="utf-8")
        docs = list(yaml.load_all(text))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's error, told safely
        problem = describe_yaml_error(exc)
        errors.append(
            ManifestError(
                Location(rel, problem.line, problem.column), f"malformed YAML: {problem.message}"
            )
        )
        return
    for doc in docs:
        if doc is None:
            continue
        line, col = _pos(doc)
        yield doc, Location(rel, line, col)


def _load_object(doc: Any, loc: Location, config: RepoConfig, desired: Desired) -> None:
    def err(message: str, path: tuple = (), obj: str = "") -> None:
        desired.errors.append(ManifestError(_locate(doc, path, loc), message, obj))

    if not isinstance(doc, CommentedMap):
        err("expected a mapping with apiVersion, kind, metadata and spec")
        return
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind == "Secret" and api == "v1":
        if not config.allowPlaintextSecrets:
            err(
                "plaintext Secret in the repo: keep credentials out of git (set them in the "
                "file named by MTV_GITOPS_SECRETS or in the environment); demos may set "
                f"allowPlaintextSecrets: true in {CONFIG_FILE}",
                ("kind",),
            )
            return
    elif kind not in SPECS:
        known = ", ".join(sorted(SPECS))
        err(f"unknown kind {kind!r}: expected one of {known}", ("kind",))
        return
    elif api != API_VERSION:
        err(f"apiVersion {api!r} for {kind}: expected {API_VERSION}", ("apiVersion",))
        return
    top = SECRET_TOP_LEVEL if kind == "Secret" else TOP_LEVEL
    extra = set(doc) - top
    if extra:
        key = sorted(extra)[0]
        err(f"unknown top-level field {key!r} in {kind}", (key,))
        return
    try:
        meta = ObjectMeta.model_validate(_plain(doc.get("metadata")))
    except ValidationError as exc:
        meta_doc = doc.get("metadata")
        name = meta_doc.get("name") if isinstance(meta_doc, dict) else None
        ns = (meta_doc.get("namespace") if isinstance(meta_doc, dict) else None) or (
            config.defaultNamespace
        )
        obj = f"{kind} {ns}/{name}" if isinstance(name, str) else kind
        if isinstance(name, str):
            desired.broken.add((kind, ns, name))
        _report(exc, doc, ("metadata",), loc, obj, desired)
        return
    if meta.namespace is None:
        meta.namespace = config.defaultNamespace
    ref = f"{kind} {meta.namespace}/{meta.name}"
    model = SecretManifest if kind == "Secret" else SPECS[kind]
    body = _plain(doc) if kind == "Secret" else _plain(doc.get("spec"))
    if body is None:
        err(f"{kind} has no spec", (), ref)
        desired.broken.add((kind, meta.namespace, meta.name))
        return
    try:
        spec: BaseModel = model.model_validate(body)
    except ValidationError as exc:
        prefix = () if kind == "Secret" else ("spec",)
        _report(exc, doc, prefix, loc, ref, desired)
        desired.broken.add((kind, meta.namespace, meta.name))
        return
    key = (meta.namespace, meta.name)
    first = desired.of(kind).get(key)
    if first is not None:
        err(f"duplicate {ref}: already defined at {first.location}", ("metadata", "name"), ref)
        return
    desired.of(kind)[key] = Manifest(kind, meta, spec, _locate(doc, (), loc), doc)


def _report(
    exc: ValidationError,
    doc: CommentedMap,
    prefix: tuple,
    loc: Location,
    obj: str,
    desired: Desired,
) -> None:
    errors = exc.errors()
    # A key left empty with its own keys beside it instead of under it (the MTV docs print the
    # NetworkMap that way): say so once, instead of "not a dictionary" plus one error per key.
    misplaced: dict[tuple, list[str]] = {}
    for e in errors:
        path = tuple(e["loc"])
        if e["type"] in EMPTY_MAPPING_TYPES and e.get("input") is None:
            misplaced[path] = []
    for e in errors:
        path = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            for empty in misplaced:
                if path[:-1] == empty[:-1]:
                    misplaced[empty].append(str(path[-1]))
                    break
    folded = {empty[:-1] + (k,) for empty, keys in misplaced.items() for k in keys}
    hide_input = obj.split(" ")[0] == "Secret"  # never echo what a Secret holds
    for e in errors:
        path = tuple(e["loc"])
        if path in folded:
            continue
        full = prefix + path
        dotted = dotted_path(full)
        if misplaced.get(path):
            keys = ", ".join(misplaced[path])
            msg = (
                f"{dotted} is empty, and {keys} beside it are not fields of "
                f"{dotted_path(full[:-1])}: indent them under {str(path[-1])!r}"
            )
        elif e["type"] == "extra_forbidden":
            msg = f"unknown field {dotted!r}"
        elif e["type"] == "missing":
            msg = f"missing required field {dotted!r}"
        else:
            msg = f"{dotted}: {e['msg']}"
            if "input" in e and not isinstance(e["input"], dict | list) and not hide_input:
                msg += f" (got {e['input']!r})"
        desired.errors.append(ManifestError(_locate(doc, full, loc), msg, obj))


def dotted_path(path: tuple) -> str:
    """``("spec", "vms", 0, "hooks")`` -> ``spec.vms[0].hooks``, as people write field paths."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _plain(node: Any) -> Any:
    """ruamel round-trip nodes to plain dicts/lists for pydantic."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _pos(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is None or lc.line is None:
        return (0, 0)
    return (lc.line + 1, lc.col + 1)


def _locate(doc: Any, path: tuple, fallback: Location) -> Location:
    """The deepest position along ``path`` that exists in the document."""
    line, col = _pos(doc) if _pos(doc) != (0, 0) else (fallback.line, fallback.column)
    node = doc
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            kl, kc = node.lc.key(part)
            line, col = kl + 1, kc + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            il, ic = node.lc.item(part)
            line, col = il + 1, ic + 1
            node = node[part]
        else:
            break
    return Location(fallback.file, line, col)


def locate(m: Manifest, *path: str | int) -> Location:
    """Where a field of a loaded manifest is, for messages about it."""
    return _locate(m.doc, tuple(path), m.location)
