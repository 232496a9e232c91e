"""Reading the user's branch: clone or fetch, hard-reset, and what changed since a revision.

The working tree is the reconciler's alone, so every sync may hard-reset it; manifests are
read from it afterwards.  Commits that touch only ``status/`` never ask for a pass, so the
reconciler cannot loop on its own writes.
"""

from __future__ import annotations

from reconciler.gitops._git import (
    STATUS_DIR,
    GitOpsError,
    GitRunner,
    fail,
    is_status_path,
    run_git,
)


class RepoSync:
    """The sync of one private clone, and questions about its history."""

    def __init__(self, git: GitRunner) -> None:
        self.git = git
        git.ensure_clone = self.sync

    def sync(self) -> str:
        """Clone or fetch, hard-reset to the remote branch and return its head sha.

        The working tree is ours alone, so anything left in it (a half-done rebase, a status
        commit that never got pushed) is discarded: status is a projection and is rewritten.
        """
        with self.git.lock:
            if not self.git.has_clone():
                self.git.workdir.mkdir(parents=True, exist_ok=True)
                status, _, err = run_git(
                    [
                        "clone",
                        "--no-checkout",
                        "--origin",
                        "origin",
                        self.git.remote,
                        str(self.git.workdir),
                    ],
                    env=self.git.env,
                    timeout=self.git.timeout,
                )
                if status != 0:
                    raise fail("cannot clone the remote", self.git.remote, err)
            else:
                self.git.must(
                    "cannot configure the remote", "remote", "set-url", "origin", self.git.remote
                )
            self._abort_rebase()
            branch = self.git.branch
            self.git.fetch(branch)
            tracking = self.git.tracking(branch)
            if self.git.rev(tracking) is None:
                raise GitOpsError(
                    f"branch {branch!r} not found on the remote ({self.git.remote_display})"
                )
            self.git.must("cannot check out", "checkout", "-q", "-f", "-B", branch, tracking)
            self.git.must("cannot reset", "reset", "-q", "--hard", tracking)
            self.git.must("cannot clean", "clean", "-q", "-ffdx")
            return self.git.head()

    def _abort_rebase(self) -> None:
        """A rebase a killed push left half-way is given up: the sync resets anyway."""
        gitdir = self.git.workdir / ".git"
        if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
            self.git.run("rebase", "--abort")

    def desired_revision(self) -> str:
        """The newest commit that touched anything outside ``status/``: what desired state
        the checkout holds.  Status commits (ours or anyone's) do not move it."""
        with self.git.lock:
            self.git.ensure()
            out = self.git.must(
                "cannot find the desired revision",
                "log",
                "-1",
                "--format=%H",
                "HEAD",
                "--",
                ".",
                f":(exclude){STATUS_DIR}",
            )
            return out.strip() or self.git.head()

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        """Every path touched by a commit in ``old..new`` (all of ``new``'s history if ``old``
        is None or unknown here), merges compared with each parent so nothing hides in one."""
        with self.git.lock:
            self.git.ensure()
            if old is not None and self.git.rev(old) is None:
                old = None
            if self.git.rev(new) is None:
                raise GitOpsError(f"unknown revision {new!r} in the checkout")
            span = new if old is None else f"{old}..{new}"
            out = self.git.must(
                "cannot list changes",
                "log",
                "-m",
                "--no-renames",
                "--name-only",
                "--format=",
                "-z",
                span,
            )
            return sorted({p for p in out.replace("\n", "\0").split("\0") if p})

    def needs_pass(self, old: str | None, new: str) -> bool:
        """True when a commit in ``old..new`` touches a path outside ``status/``.

        Commits that only touch status (ours or another reconciler's) never cause work, so
        the reconciler cannot loop on its own writes.
        """
        if old is not None and old == new:
            return False
        return any(not is_status_path(p) for p in self.changed_paths(old, new))

    def is_own_commit(self, sha: str) -> bool:
        """True when *sha* was authored with our configured email."""
        with self.git.lock:
            self.git.ensure()
            status, out, _ = self.git.run("log", "-1", "--format=%ae", sha)
            return status == 0 and out.strip().lower() == self.git.author_email.lower()
