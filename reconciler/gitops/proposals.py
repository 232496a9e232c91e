"""Proposal branches: one commit beside the user's branch, for a person to merge.

A proposal (a warm migration's cutover) is a commit on top of the tracked branch, pushed to a
branch of its own; it is never forced, never goes onto the tracked branch, and a branch that
holds someone else's commits is left alone.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import git
from gitdb import IStream

from reconciler.gitops._git import GitOpsError, GitRunner, clean_path, fail


@dataclass(frozen=True)
class ProposalBranch:
    """A proposal branch beside the branch it proposes to, both as just fetched.

    What a proposer needs to choose its next commit without reading git itself: whether
    there is a branch to build on, whether it was merged already, and whose commits it holds.
    """

    name: str
    base: str  # the head of the branch proposed to
    tip: str | None  # the head of the proposal branch; None when the remote has no such branch
    merged: bool  # the tip is already in base: merging the branch again would change nothing
    foreign: tuple[str, ...]  # commits in base..tip not authored by us, newest first


class Proposals:
    """Proposal branches pushed from one private clone."""

    def __init__(self, git: GitRunner) -> None:
        self.git = git

    def fetch_tracked(self) -> str:
        """Fetch the tracked branch and return its head, leaving the working tree alone: the
        user's newest files for a proposal, without the hard reset of :meth:`sync`."""
        with self.git.lock:
            self.git.ensure()
            branch = self.git.branch
            head = self.git.fetch_head(branch)
            if head is None:
                raise GitOpsError(f"branch {branch!r} not found ({self.git.remote_display})")
            return head

    def proposal_branch(self, branch: str, *, against: str | None = None) -> ProposalBranch:
        """Fetch *branch* and say how it stands against the tracked branch.

        *against* is the tracked branch's head to compare with (e.g. from
        :meth:`fetch_tracked`, or an earlier look's ``base``), so decisions made on it hold;
        without it the tracked branch is fetched too.
        """
        with self.git.lock:
            self.git.ensure()
            return self._look(branch, self.git.branch, against)

    def tracked_head(self) -> str | None:
        """The tracked branch's head as last fetched here (no network): what a preceding
        :meth:`sync`, :meth:`proposal_branch` or :meth:`push_branch` built on."""
        with self.git.lock:
            self.git.ensure()
            return self.git.rev(self.git.tracking(self.git.branch))

    def push_branch(
        self, branch: str, files: Mapping[str, str], message: str, base: str | None = None
    ) -> str:
        """Propose *files* on *branch*: one commit on top of the base branch, pushed.

        If the branch already carries exactly these contents, nothing is pushed and its head
        is returned; if the base itself already does, there is nothing to propose and the
        base head is returned.  If the branch exists with other contents and only our commits,
        a new commit goes on top (a fast-forward; never a force-push).  A branch with someone
        else's commits is left alone and :class:`GitOpsError` is raised.
        """
        cleaned = self._proposal_files(files, message)
        with self.git.lock:
            self.git.ensure()
            base = base or self.git.branch
            if branch == base:
                raise ValueError("a proposal branch must differ from its base")
            look = self._look(branch, base, None)
            parent = look.base
            if look.tip is not None:
                if self._has_contents(look.tip, cleaned):
                    return look.tip
                if look.foreign:
                    raise GitOpsError(
                        f"branch {branch!r} has commits not made by {self.git.author_email} "
                        f"({', '.join(c[:12] for c in look.foreign[:5])}); not touching it"
                    )
                # Already merged into the base: start afresh from the base (still a fast-forward).
                parent = look.base if look.merged else look.tip
            elif self._has_contents(look.base, cleaned):
                return look.base  # the base already says this: nothing to propose
            return self._commit_and_push(branch, parent, cleaned, message)

    def push_commit(self, branch: str, parent: str, files: Mapping[str, str], message: str) -> str:
        """Commit *files* onto *parent* and push that commit to *branch*; return its sha.

        For a proposer that has chosen the parent itself (:meth:`push_branch` chooses for
        you), e.g. starting afresh from the base after a merge.  The push is never forced, so
        *parent* must be the branch's tip or contain it; never the tracked branch, which only
        takes status.  A refused push raises :class:`GitOpsError`.
        """
        cleaned = self._proposal_files(files, message)
        with self.git.lock:
            self.git.ensure()
            if branch == self.git.branch:
                raise ValueError(f"proposals never go onto the tracked branch {branch!r}")
            return self._commit_and_push(branch, parent, cleaned, message)

    @staticmethod
    def _proposal_files(files: Mapping[str, str], message: str) -> dict[str, str]:
        cleaned = {clean_path(p): c for p, c in files.items()}
        if not cleaned:
            raise ValueError("a proposal needs at least one file")
        if not message.strip():
            raise ValueError("a commit message is required")
        return cleaned

    def _look(self, branch: str, base: str, base_sha: str | None) -> ProposalBranch:
        if base_sha is None:
            base_sha = self.git.fetch_head(base)
            if base_sha is None:
                raise GitOpsError(f"base branch {base!r} not found ({self.git.remote_display})")
        tip = self._remote_branch(branch)
        foreign: list[str] = []
        if tip is not None:
            self.git.fetch(branch)
            tip = self.git.rev(self.git.tracking(branch)) or tip
            foreign = self._foreign_commits(base_sha, tip)
        merged = tip is not None and self.git.is_ancestor(tip, base_sha)
        return ProposalBranch(branch, base_sha, tip, merged, tuple(foreign))

    def _commit_and_push(
        self, branch: str, parent: str, files: Mapping[str, str], message: str
    ) -> str:
        sha = self._commit_onto(parent, files, message)
        ok, _, err = self.git.push(sha, branch)
        if not ok:
            raise fail(f"push of proposal branch {branch!r} was refused", self.git.remote, err)
        self.git.run("update-ref", self.git.tracking(branch), sha)
        return sha

    def _remote_branch(self, branch: str) -> str | None:
        status, out, err = self.git.run(
            "ls-remote", "--heads", "origin", f"refs/heads/{branch}", timeout=self.git.timeout
        )
        if status != 0:
            raise fail("cannot list branches of the remote", self.git.remote, err)
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def _has_contents(self, commit: str, files: Mapping[str, str]) -> bool:
        repo = git.Repo(self.git.workdir)
        try:
            tree = repo.commit(commit).tree
            for path, content in files.items():
                try:
                    blob = tree / path
                except KeyError:
                    return False
                if blob.data_stream.read() != content.encode("utf-8"):
                    return False
            return True
        finally:
            repo.close()

    def _foreign_commits(self, base: str, tip: str) -> list[str]:
        out = self.git.must(
            "cannot list branch commits", "log", "--format=%H %ae", f"{base}..{tip}"
        )
        foreign = []
        for line in out.splitlines():
            sha, _, email = line.partition(" ")
            if email.strip().lower() != self.git.author_email.lower():
                foreign.append(sha)
        return foreign

    def _commit_onto(self, parent: str, files: Mapping[str, str], message: str) -> str:
        """Make a commit of *parent*'s tree plus *files*, without touching the working tree."""
        repo = git.Repo(self.git.workdir)
        try:
            modes = {}
            with tempfile.TemporaryDirectory(prefix="mtv-gitops-index-") as tmp:
                env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
                self._run_env(env, "read-tree", parent)
                for path, content in files.items():
                    data = content.encode("utf-8")
                    istream = repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
                    _, listed, _ = self.git.run("ls-tree", parent, "--", path)
                    mode = listed.split(" ", 1)[0] if listed.strip() else "100644"
                    modes[path] = mode if mode in ("100644", "100755") else "100644"
                    self._run_env(
                        env,
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        f"{modes[path]},{istream.hexsha.decode()},{path}",
                    )
                tree = self._run_env(env, "write-tree").strip()
            return self._run_env({}, "commit-tree", tree, "-p", parent, "-m", message).strip()
        finally:
            repo.close()

    def _run_env(self, env: Mapping[str, str], *args: str) -> str:
        status, out, err = self.git.run(*args, env=env)
        if status != 0:
            raise fail(f"git {args[0]} failed", self.git.remote, err)
        return out
