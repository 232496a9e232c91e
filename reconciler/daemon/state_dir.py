"""Where a command finds its state: the state dir, the local cluster, the secrets."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_ENV = "MTV_GITOPS_STATE"
CHECKOUT_DIR = "checkout"  # the reconciler's private clone, inside the state dir
CLUSTER_ENV = "MTV_GITOPS_CLUSTER"


def is_local_repo(repo: str) -> bool:
    return Path(repo).is_dir()


def state_dir_for(repo: str, explicit: Path | None = None) -> Path:
    """The reconciler's private state for this repo; never inside the working tree."""
    if explicit:
        return explicit
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV])
    path = Path(repo)
    if (path / ".git").is_dir():
        return (path / ".git" / "mtv-gitops").resolve()
    digest = hashlib.sha256(repo.encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "mtv-gitops" / digest


TARGET_FILE = "local-target"


def cluster_dir_for(state: Path, explicit: Path | None = None) -> Path:
    """--cluster, else $MTV_GITOPS_CLUSTER, else what this state dir last used, else inside it."""
    if explicit:
        return explicit
    if os.environ.get(CLUSTER_ENV):
        return Path(os.environ[CLUSTER_ENV])
    remembered = state / TARGET_FILE
    if remembered.is_file():
        return Path(remembered.read_text().strip())
    return state / "cluster"


def remember_cluster(state: Path, cluster: Path) -> None:
    """Later commands on the same state dir find the same local target without --cluster."""
    state.mkdir(parents=True, exist_ok=True)
    (state / TARGET_FILE).write_text(f"{cluster.resolve()}\n")
