"""``rules bump``: raise a provider's rules version in the repo, so every VM is validated again.

MTV keeps the version in ``rules_version.rego``; a repo file of that name replaces the shipped
one. Bumping edits the number in the repo's file (nothing else on its lines), or creates the
file from the shipped one with the next number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from reconciler.validation.ruleset import RULES_DIR, default_rules_of, package_of

VERSION_FILE = "rules_version.rego"
_PATTERNS = (
    re.compile(r"^(\s*RULES_VERSION\s*:?=\s*)(\d+)", re.MULTILINE),
    re.compile(r"(\"rules_version\"\s*:\s*)(\d+)"),
)


class BumpError(ValueError):
    pass


@dataclass(frozen=True)
class Bumped:
    path: Path
    old: int
    new: int
    created: bool


def read_version(source: str) -> int | None:
    for pattern in _PATTERNS:
        m = pattern.search(source)
        if m:
            return int(m.group(2))
    return None


def bump(repo_root: Path, provider_type: str, defaults: Path | None = None) -> Bumped:
    package_of(provider_type)
    target = repo_root / RULES_DIR / provider_type / VERSION_FILE
    created = not target.exists()
    folder = defaults / provider_type if defaults else default_rules_of(provider_type)
    source_path = folder / VERSION_FILE
    source = (source_path if created else target).read_text(encoding="utf-8")
    for pattern in _PATTERNS:
        m = pattern.search(source)
        if m:
            old = int(m.group(2))
            new_source = source[: m.start(2)] + str(old + 1) + source[m.end(2) :]
            break
    else:
        raise BumpError(
            f"{target if not created else source_path}: no `RULES_VERSION := N` or "
            '`"rules_version": N` to raise; write one of them'
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(new_source, encoding="utf-8")
    return Bumped(target, old, old + 1, created)
