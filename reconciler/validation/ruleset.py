"""Rule sets: the shipped defaults per provider type plus the repo's ``rules/<provider>/``.

A repo file adds to the default package (same package, so rules of the same name are OR-ed, as
in OPA); a repo file with the same name as a default file replaces that file (how a user bumps
``rules_version.rego`` or turns a default rule off). Test files (``*_test.rego``) and data cases
(``*_cases.yaml``) are kept apart: they never validate a VM.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.plugin_manager import rule_types, rules_of
from reconciler.sources import Rules
from reconciler.validation.engine import Engine, EvalResult
from reconciler.validation.opa_compat import constant_names, rewrite, rule_names
from reconciler.validation.regov0 import RegoSyntaxError, Rewrite, upgrade

RULES_DIR = "rules"
DEFAULTS_ENV = "MTV_GITOPS_DEFAULT_RULES"  # a folder of <type>/ folders instead of the plugins'
SAMPLE_VM = "sample_vm.json"  # beside the default rules: a VM document lint evaluates once


SPRINTF_NOTE = (
    "uses sprintf: regopy 1.5.2 prints a string made by another built-in (lower, concat, ...) "
    "with its quotes inside sprintf's result, which breaks the VM's verdict; build texts with "
    "concat"
)


def rewrite_notes(f: RuleFile) -> list[str]:
    """Each rewrite made before compiling, as information: file:line, before and after."""
    notes = []
    for rw in f.rewrites:
        if rw.kind == "opa":
            notes.append(
                f"{f.name}:{rw.line}: rewritten so that regopy evaluates it as OPA does: "
                f"`{rw.before}` -> `{rw.after}`"
            )
    return notes


def replaced_notes(rs: RuleSet) -> list[str]:
    """Which default files the repo's files of the same name replace (said wherever the set is
    shown: lint, rules eval, status)."""
    return [f"{name} is replaced by the repo's file of that name" for name in rs.replaced]


def engine_notes(f: RuleFile) -> list[str]:
    """What a rule author should know about this engine before it bites."""
    notes = [
        f"{f.name}:{rw.line}: Rego v0 `{rw.before}` read as the partial set rule `{rw.after}` "
        "(write it that way, with `import rego.v1`)"
        for rw in f.rewrites
        if rw.kind == "v0"
    ]
    if "sprintf(" in f.source:
        line = f.source[: f.source.index("sprintf(")].count("\n") + 1
        notes.append(f"{f.name}:{line}: {SPRINTF_NOTE}")
    return notes


def _rules(provider_type: str) -> Rules:
    """The plugin's answer for ``provider_type``; ValueError naming the types that have rules."""
    found = rules_of(provider_type)
    if found is None:
        known = ", ".join(rule_types()) or "none"
        raise ValueError(f"no rules for provider type {provider_type!r} (known: {known})")
    return found


def default_rules_of(provider_type: str) -> Path:
    """The folder of the shipped rules of ``provider_type``: its plugin's, unless
    ``$MTV_GITOPS_DEFAULT_RULES`` names a folder of ``<type>/`` folders to use instead."""
    env = os.environ.get(DEFAULTS_ENV)
    if env:
        return Path(env) / provider_type
    return _rules(provider_type).folder


def package_of(provider_type: str) -> str:
    """The Rego package the rules of ``provider_type`` are written in (its plugin says)."""
    return _rules(provider_type).package


def validate_query(provider_type: str) -> str:
    return f"x = data.{package_of(provider_type)}.validate"


def version_query(provider_type: str) -> str:
    """The version, asked so that an undefined document gives an empty list: rego-cpp aborts the
    process on a plain query of an undefined document."""
    return f"x = [v | v := data.{package_of(provider_type)}.rules_version.rules_version]"


# a top-level `validate` rule head; found in the text, since evaluating it would run every rule
_VALIDATE_HEAD = re.compile(r"^validate\s*(:?=|if\b|\{)", re.MULTILINE)


def compile_rules(engine: Engine, rs: RuleSet) -> EvalResult:
    """Build ``rs`` in ``engine``; the result is the rules version, or why the set is unusable."""
    t = rs.provider_type
    if not any(_VALIDATE_HEAD.search(f.source) for f in rs.files):
        return EvalResult(
            False, error=f"no `validate` rule in package {package_of(t)}: nothing to query"
        )
    built = engine.build(rs.modules, validate_query(t), version_query(t))
    if not built.ok:
        return built
    versions = built.result if isinstance(built.result, list) else []
    if len(versions) != 1 or not isinstance(versions[0], int) or isinstance(versions[0], bool):
        found = json.dumps(versions) if versions else "none"
        return EvalResult(
            False,
            error=f"`rules_version` in package {package_of(t)} must be "
            f'{{"rules_version": N}} with a whole number N (found {found})',
        )
    return EvalResult(True, versions[0])


@dataclass(frozen=True)
class RuleFile:
    """One ``.rego`` file as the engine sees it (``source`` is after any v0 rewrite)."""

    name: str  # how messages name it: "rules/vsphere/x.rego" in the repo, "defaults/..." shipped
    path: Path
    source: str
    custom: bool
    rewrites: tuple[Rewrite, ...] = ()

    @property
    def base(self) -> str:
        return self.path.name


@dataclass
class RuleSet:
    provider_type: str
    files: list[RuleFile] = field(default_factory=list)  # what validates VMs
    tests: list[RuleFile] = field(default_factory=list)  # *_test.rego
    cases: list[Path] = field(default_factory=list)  # *_cases.yaml
    problems: list[str] = field(default_factory=list)  # files refused before compiling
    replaced: list[str] = field(default_factory=list)  # default files a repo file replaces
    defaults_dir: Path = field(default_factory=Path)  # where the shipped files came from

    @property
    def sample_vm(self) -> Path:
        """A typical VM document of this provider type, shipped with the default rules."""
        return self.defaults_dir / SAMPLE_VM

    @property
    def modules(self) -> list[tuple[str, str]]:
        return [(f.name, f.source) for f in self.files]

    @property
    def custom_files(self) -> list[RuleFile]:
        return [f for f in self.files if f.custom]

    @property
    def digest(self) -> str:
        """Identity of what validates VMs: file names and contents, nothing else."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: (f.custom, f.base)):
            h.update(f"{int(f.custom)}:{f.base}:{len(f.source)}\n".encode())
            h.update(f.source.encode())
        return "sha256:" + h.hexdigest()[:16]

    def without_custom(self) -> RuleSet:
        """The shipped defaults alone, all of them (the set that is always good)."""
        return _load_rule_set(self.provider_type, None, self.defaults_dir)


def _read(path: Path, name: str, custom: bool) -> RuleFile:
    """The file with v0 heads in v1 form; the OPA rewrites come once the set is known."""
    text = path.read_text(encoding="utf-8")
    source, rewrites = upgrade(text)
    return RuleFile(name, path, source, custom, tuple(rewrites))


@functools.lru_cache(maxsize=1024)
def _rewritten(
    source: str, names: frozenset[str], constants: frozenset[str]
) -> tuple[str, tuple[Rewrite, ...]]:
    """``rewrite`` remembered: the service loads every rule set again on each pass, and the
    files seldom change between passes (a refusal raises, and is not remembered)."""
    text, rewrites = rewrite(source, names, constants)
    return text, tuple(rewrites)


def _as_opa_reads(f: RuleFile, names: set[str], constants: set[str]) -> RuleFile:
    """``f`` with the shapes regopy misreads bound first, as OPA evaluates them."""
    source, rewrites = _rewritten(f.source, frozenset(names), frozenset(constants))
    if not rewrites:
        return f
    return RuleFile(f.name, f.path, source, f.custom, (*f.rewrites, *rewrites))


def _rego_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".rego")


def load_rule_set(
    provider_type: str, repo_root: Path | None, defaults: Path | None = None
) -> RuleSet:
    """The defaults for ``provider_type`` (from ``defaults/<type>/`` when given, else its
    plugin's folder), with the repo's ``rules/<type>/`` applied on top."""
    package_of(provider_type)
    folder = defaults / provider_type if defaults else default_rules_of(provider_type)
    return _load_rule_set(provider_type, repo_root, folder)


def _load_rule_set(provider_type: str, repo_root: Path | None, folder: Path) -> RuleSet:
    rs = RuleSet(provider_type, defaults_dir=folder.resolve())
    chosen: dict[str, RuleFile] = {}
    for path in _rego_files(folder):
        f = _read(path, f"defaults/{provider_type}/{path.name}", False)
        if path.name.endswith("_test.rego"):
            rs.tests.append(f)
        else:
            chosen[path.name] = f
    rs.cases += sorted(rs.defaults_dir.glob("*_cases.yaml"))
    if repo_root is not None:
        folder = repo_root / RULES_DIR / provider_type
        for path in _rego_files(folder):
            name = f"{RULES_DIR}/{provider_type}/{path.name}"
            try:
                f = _read(path, name, True)
            except RegoSyntaxError as exc:
                rs.problems.append(f"{name}:{exc.line}: {exc}")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                rs.problems.append(f"{name}: cannot read: {exc}")
                continue
            if path.name.endswith("_test.rego"):
                rs.tests.append(f)
                continue
            wrong = _wrong_package(f, provider_type)
            if wrong:
                rs.problems.append(wrong)
                continue
            if path.name in chosen:
                rs.replaced.append(chosen[path.name].name)
            chosen[path.name] = f
        rs.cases += sorted(p.resolve() for p in folder.glob("*_cases.yaml"))
    rs.files, rs.tests = as_opa_reads([chosen[k] for k in sorted(chosen)], rs.tests, rs.problems)
    return rs


_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.MULTILINE)


def _wrong_package(f: RuleFile, provider_type: str) -> str:
    """Why a repo file cannot join the provider's rules: it is in another package."""
    m = _PACKAGE.search(f.source)
    want = package_of(provider_type)
    if m is None:
        return f"{f.name}:1: no `package` line; the {provider_type} rules are `package {want}`"
    if m.group(1) != want:
        line = f.source[: m.start(1)].count("\n") + 1
        return (
            f"{f.name}:{line}: `package {m.group(1)}` is not the {provider_type} rules' package "
            f"`{want}`: its rules would never be queried"
        )
    return ""


def read_source(name: str, text: str, custom: bool = True) -> RuleFile:
    """A module given as text (tests, samples), read as a rule file is."""
    source, rewrites = upgrade(text)
    return RuleFile(name, Path(name), source, custom, tuple(rewrites))


def as_opa_reads(
    files: list[RuleFile], tests: list[RuleFile], problems: list[str]
) -> tuple[list[RuleFile], list[RuleFile]]:
    """The files of one package with the shapes regopy misreads rewritten as OPA reads them;
    a repo file that cannot be rewritten faithfully is left out and said in ``problems``."""
    names = {n for f in files for n in rule_names(f.source)}
    consts = {n for f in files for n in constant_names(f.source)}
    return (
        _opa_reads(files, names, consts, problems),
        _opa_reads(tests, names, consts, problems),
    )


def _opa_reads(
    files: list[RuleFile], names: set[str], consts: set[str], problems: list[str]
) -> list[RuleFile]:
    """The files rewritten; a repo file that cannot be is refused (a default one raises)."""
    out = []
    for f in files:
        try:
            out.append(_as_opa_reads(f, names | rule_names(f.source), consts))
        except RegoSyntaxError as exc:
            if not f.custom:
                raise
            problems.append(f"{f.name}:{exc.line}: {exc}")
        except RecursionError:
            if not f.custom:
                raise
            problems.append(f"{f.name}: nested too deeply to be read")
    return out


def repo_provider_types(repo_root: Path) -> list[str]:
    """Provider types the repo has custom rules for (unknown folders are reported by lint)."""
    base = repo_root / RULES_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
