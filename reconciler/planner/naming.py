"""Target names that Kubernetes accepts, made the way MTV makes them."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63
# the MTV 2.4 guide (2.4): only a-z, 0-9 and "-"; no upper case, spaces, periods or others
_EXCLUDED = re.compile(r"[^a-z0-9-]")


def dns1123_name(name: str) -> str:
    """Forklift's rule: lower case, ``_`` to ``-``, drop excluded characters, trim, 63 max."""
    new = name.lower().replace("_", "-")
    new = _EXCLUDED.sub("", new)[:MAX_NAME]
    new = new.strip("-")
    return new or "vm"


def unique_name(name: str, taken: set[str], salt: str) -> str:
    """``name`` itself, or with a short suffix derived from ``salt`` (stable across passes)."""
    if name not in taken:
        return name
    digest = hashlib.sha256(salt.encode()).hexdigest()
    for i in range(0, len(digest) - 4):
        suffix = "-" + digest[i : i + 4]
        candidate = name[: MAX_NAME - len(suffix)].rstrip(".-") + suffix
        if candidate not in taken:
            return candidate
    raise ValueError(f"no unique name for {name!r}")


def is_dns1123_label(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)) and len(name) <= MAX_NAME
