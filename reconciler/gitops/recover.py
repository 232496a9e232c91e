"""Make the reconciler's private checkout usable again after a git of ours was killed.

git guards its index and refs with ``*.lock`` files it creates and renames; a git killed in
between (an OOM kill takes the whole process group) leaves them, and every later git refuses to
run ("Unable to create '.../index.lock': File exists"). The checkout is ours alone (the state
folder's lock says no other reconciler uses it), so a lock file that no running git of ours
holds open is stale and goes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def remove_stale_git_locks(checkout: Path) -> list[Path]:
    """Remove ``*.lock`` files under ``checkout/.git`` that no running process has in its
    working directory's repository; returns what was removed."""
    git_dir = checkout / ".git"
    if not git_dir.is_dir():
        return []
    if _git_running_in(checkout):
        return []
    removed = []
    for lock in sorted(git_dir.rglob("*.lock")):
        if lock.is_file():
            try:
                lock.unlink()
            except OSError:
                continue
            removed.append(lock)
            log.warning("removed %s, left behind by a git that was killed", lock)
    return removed


def _git_running_in(checkout: Path) -> bool:
    """Whether some process works in the checkout right now (its cwd is in it)."""
    target = str(checkout.resolve())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == target or cwd.startswith(target + os.sep):
            return True
    return False
