"""Read committed status back, for ``mtv-gitops status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.status.projection import REPO_STATUS, STATUS_DIR


def read_status(repo: str, state_dir: Path) -> tuple[list[dict[str, Any]], str]:
    """Status documents from the reconciler's checkout (newest), else from REPO's tree."""
    candidates = [state_dir / "checkout", Path(repo)]
    for root in candidates:
        folder = root / STATUS_DIR
        if folder.is_dir():
            return _load(root), str(folder)
    return [], str(candidates[-1] / STATUS_DIR)


def _load(root: Path) -> list[dict[str, Any]]:
    yaml = YAML(typ="safe")
    docs = []
    for path in sorted((root / STATUS_DIR).rglob("*.yaml")):
        doc = yaml.load(path.read_text()) or {}
        if str(path.relative_to(root)) == REPO_STATUS:
            doc = {"kind": "Repo", **doc}
        docs.append(doc)
    return docs
