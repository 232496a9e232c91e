"""Reading the user's branch: clone or fetch, hard-reset, and what changed since a revision.

The working tree is the reconciler's alone, so every sync may hard-reset it -- except for status
commits that a failed push left: those are replayed onto the remote's head, never dropped, and
pushed by the next status write (or :meth:`StatusPush.flush`).  Manifests are read from it
afterwards.  Commits that touch only ``status/`` never ask for a pass, so the reconciler cannot
loop on its own writes.
"""

from __future__ import annotations

import logging

from reconciler.gitops._git import (
    STATUS_DIR,
    GitOpsError,
    GitRunner,
    fail,
    is_status_path,
    run_git,
)
from reconciler.gitops.status_push import rebase_status

log = logging.getLogger(__name__)

# What a pass reads from the repo: its YAML (manifests, the repo config) and its rules.
INPUTS = (
    ":(glob)**/*.yaml",
    ":(glob)**/*.yml",
    ":(glob)rules/**",
    f":(exclude){STATUS_DIR}",
)


class RepoSync:
    """The sync of one private clone, and questions about its history."""

    def __init__(self, git: GitRunner) -> None:
        self.git = git
        git.ensure_clone = self.sync

    def sync(self) -> str:
        """Clone or fetch, bring the checkout to the remote branch and return the remote's head.

        The working tree is ours alone, so anything left in it (a half-done rebase, files) is
        discarded.  Status commits that never got pushed (the remote was away at the end of a
        pass) are kept, replayed on top of the remote's head: they are the only record of
        that status until it is pushed, and no pass may run again to render it.
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
            remote_head = self.git.rev(tracking)
            if not self._keep_unpushed_status(branch, tracking):
                self.git.must("cannot check out", "checkout", "-q", "-f", "-B", branch, tracking)
                self.git.must("cannot reset", "reset", "-q", "--hard", tracking)
                self.git.must("cannot clean", "clean", "-q", "-ffdx")
            return remote_head

    def _keep_unpushed_status(self, branch: str, tracking: str) -> bool:
        """Replay the local branch's unpushed commits onto *tracking* when they touch only
        ``status/`` (ours: nobody else commits here); False when there is nothing to keep."""
        local = self.git.rev(f"refs/heads/{branch}")
        if local is None or self.git.is_ancestor(local, tracking):
            return False
        status, out, _ = self.git.run("diff", "--name-only", "-z", f"{tracking}...{local}")
        paths = [p for p in out.split("\0") if p]
        if status != 0 or not paths or not all(is_status_path(p) for p in paths):
            return False
        self.git.must("cannot check out", "checkout", "-q", "-f", branch)
        self.git.must("cannot reset", "reset", "-q", "--hard", local)
        self.git.must("cannot clean", "clean", "-q", "-ffdx")
        try:
            rebase_status(self.git, branch)
        except GitOpsError as exc:
            log.warning("unpushed status dropped, the next pass renders it again: %s", exc)
            return False
        return True

    def _abort_rebase(self) -> None:
        """A rebase a killed push left half-way is given up: the sync resets anyway."""
        gitdir = self.git.workdir / ".git"
        if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
            self.git.run("rebase", "--abort")

    def desired_revision(self) -> str:
        """The newest commit that changed what the reconciler reads (manifests, the repo
        config, rules): what desired state the checkout holds.  Status commits (ours or
        anyone's) and files it never reads (a README) do not move it."""
        with self.git.lock:
            self.git.ensure()
            out = self.git.must(
                "cannot find the desired revision", "log", "-1", "--format=%H", "HEAD", "--",
                *INPUTS,
            )  # fmt: skip
            return out.strip() or self.git.head()

    def input_revisions(self) -> dict[str, str]:
        """Each file the reconciler reads -> the newest commit that changed it, in one walk
        of the history: a status file names the revision of its own object's manifest, so a
        commit to one plan does not rewrite every status file."""
        with self.git.lock:
            self.git.ensure()
            out = self.git.must(
                "cannot list the manifests' revisions",
                "-c",
                "core.quotePath=false",
                "log",
                "--format=>%H",
                "--name-only",
                "--no-renames",
                "HEAD",
                "--",
                *INPUTS,
            )
        found: dict[str, str] = {}
        sha = ""
        for line in out.splitlines():
            if line.startswith(">"):
                sha = line[1:]
            elif line:
                found.setdefault(line, sha)
        return found

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
