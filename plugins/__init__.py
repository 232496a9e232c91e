"""The sources bundled with mtv-gitops, each a plugin registered as a third party's would be."""

from __future__ import annotations

import sys
from pathlib import Path

SHARE = Path("share") / "mtv-gitops"


def bundled(*parts: str) -> Path:
    """A file the distribution ships beside the code (``rules/<type>``, ``examples/repo``):
    in a checkout (or an editable install) the top-level folder, in an installed wheel the
    data files under ``<prefix>/share/mtv-gitops``."""
    here = Path(__file__).resolve().parents[1].joinpath(*parts)
    if here.exists():
        return here
    return Path(sys.prefix).joinpath(SHARE, *parts)
