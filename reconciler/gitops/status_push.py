"""Committing status and pushing it onto the user's branch, without ever forcing.

Only ``status/`` goes onto the user's branch; a push that loses a race with a user is rebased
onto the new remote head (on a conflict in ``status/`` our version wins, a conflict elsewhere
aborts) and tried again with backoff; a user's commit is never rewritten or dropped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from reconciler.gitops._git import (
    STATUS_DIR,
    GitOpsError,
    GitRunner,
    clean_path,
    fail,
    is_status_path,
)


class StatusPush:
    """Status commits of one private clone, pushed with fetch-rebase-retry.

    ``last_pushed`` is the last commit pushed; ``on_pushed`` is told each new one, so a
    restarted daemon still recognises its own revision.
    """

    def __init__(
        self,
        git: GitRunner,
        *,
        last_pushed: str | None = None,
        on_pushed: Callable[[str], None] | None = None,
        push_attempts: int = 6,
        backoff: float = 0.2,
    ) -> None:
        self.git = git
        self.last_pushed = last_pushed
        self.on_pushed = on_pushed
        self.push_attempts = max(1, push_attempts)
        self.backoff = backoff
        # for the metrics: pushes tried again, status conflicts resolved, pushes given up
        self.counts = {"retries": 0, "conflicts": 0, "failures": 0}

    def write_status(self, files: Mapping[str, str | None], message: str) -> str | None:
        """Commit *files* (all under ``status/``; None deletes) and push them to the branch.

        Returns the pushed sha, or None when nothing changed.  A push that loses a race with
        a user is rebased onto the new remote head and retried with backoff; it is never
        forced.  *message* should be deterministic (no clock): it goes into the audit trail.
        """
        cleaned: dict[str, str | None] = {}
        for raw, content in files.items():
            path = clean_path(raw)
            if not is_status_path(path):
                raise ValueError(f"status writes must stay under {STATUS_DIR}/: {raw!r}")
            cleaned[path] = content
        if not message.strip():
            raise ValueError("a commit message is required")
        with self.git.lock:
            self.git.ensure()
            branch = self.git.branch
            targets = {path: self._safe_target(path) for path in cleaned}  # check all first
            for path, content in cleaned.items():
                target = targets[path]
                if content is None:
                    target.unlink(missing_ok=True)
                    self.git.must(
                        "cannot stage", "rm", "-q", "--cached", "--ignore-unmatch", "--", path
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(content, encoding="utf-8", newline="")
                    self.git.must("cannot stage", "add", "--", path)
            staged, _, _ = self.git.run("diff", "--cached", "--quiet")
            if staged != 0:
                self.git.must(
                    "cannot commit",
                    "commit",
                    "-q",
                    "--no-verify",
                    "--cleanup=whitespace",
                    "-m",
                    message,
                )
            elif not self._ahead_of_remote(branch):
                return None
            return self._push_with_rebase(branch)

    def pending(self) -> bool:
        """True when status commits made here are not on the remote yet (a push that failed:
        the remote was away, or refused).  Asks only the checkout, never the network."""
        with self.git.lock:
            if not self.git.has_clone():
                return False
            return self._ahead_of_remote(self.git.branch)

    def flush(self) -> str | None:
        """Push status commits that wait in the checkout, rebased onto the remote's head;
        the pushed sha, or None when nothing waited."""
        with self.git.lock:
            self.git.ensure()
            branch = self.git.branch
            if not self._ahead_of_remote(branch):
                return None
            self.git.fetch(branch)
            rebase_status(self.git, branch)
            if not self._ahead_of_remote(branch):
                return None  # the remote already says the same
            return self._push_with_rebase(branch)

    def _safe_target(self, path: str) -> Path:
        """The file for *path*, refusing symlinks on the way: a committed ``status`` symlink
        must not let a status write land in ``plans/`` or outside the checkout."""
        current = self.git.workdir
        for part in PurePosixPath(path).parts:
            current = current / part
            if current.is_symlink():
                raise GitOpsError(f"refusing to write through a symlink: {path!r}")
        return current

    def _ahead_of_remote(self, branch: str) -> bool:
        """True when local commits (e.g. an earlier push that gave up) wait to be pushed."""
        status, out, _ = self.git.run("rev-list", "--count", f"{self.git.tracking(branch)}..HEAD")
        return status == 0 and out.strip() not in ("", "0")

    def _push_with_rebase(self, branch: str) -> str | None:
        delay = self.backoff
        last_error = ""
        for attempt in range(self.push_attempts):
            if attempt:
                self.counts["retries"] += 1
                time.sleep(delay + random.uniform(0, delay / 2))
                delay *= 2
                self.git.fetch(branch)
                self.counts["conflicts"] += rebase_status(self.git, branch)
                if not self._ahead_of_remote(branch):
                    return None  # someone already wrote exactly this status
            sha = self.git.head()
            ok, retryable, err = self.git.push(sha, branch)
            if ok:
                self._record_push(sha, branch)
                return sha
            last_error = err
            if not retryable:
                self.counts["failures"] += 1
                raise fail(f"push of status to {branch!r} was refused", self.git.remote, err)
        self.counts["failures"] += 1
        raise fail(
            f"push of status to {branch!r} still rejected after {self.push_attempts} attempts",
            self.git.remote,
            last_error,
        )

    def _record_push(self, sha: str, branch: str) -> None:
        # The remote now has sha; make the tracking ref say so without another fetch.
        self.git.run("update-ref", self.git.tracking(branch), sha)
        self.last_pushed = sha
        if self.on_pushed is not None:
            self.on_pushed(sha)


def rebase_status(git: GitRunner, branch: str) -> int:
    """Replay our unpushed status commits onto the fetched head; on conflict ours wins.
    Returns how many conflicts in ``status/`` it resolved.

    The sync uses it too, so status commits that a failed push left are never dropped.

    During a rebase git calls the upstream side "ours" and the commit being replayed
    "theirs", so our status version is ``--theirs`` here.
    """
    tracking = git.tracking(branch)
    status, out, err = git.run("rebase", "--no-autostash", tracking)
    resolved = 0
    for _ in range(1000):
        if status == 0:
            return resolved
        conflicted = git.must(
            "cannot list conflicts", "diff", "--name-only", "--diff-filter=U", "-z"
        )
        paths = [p for p in conflicted.split("\0") if p]
        if not paths or any(not is_status_path(p) for p in paths):
            git.run("rebase", "--abort")
            raise fail("cannot rebase the status commit", git.remote, err or out)
        resolved += len(paths)
        for path in paths:
            took, _, _ = git.run("checkout", "--theirs", "--", path)
            if took == 0:
                git.must("cannot resolve a status conflict", "add", "--", path)
            else:  # our commit deleted it
                git.must("cannot resolve a status conflict", "rm", "-q", "--", path)
        status, out, err = git.run("-c", "core.editor=true", "rebase", "--continue")
        if status != 0 and "nothing to commit" in f"{out}{err}":
            status, out, err = git.run("rebase", "--skip")
    git.run("rebase", "--abort")
    raise GitOpsError(f"rebase of the status commit did not finish ({git.remote_display})")
