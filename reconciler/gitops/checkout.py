"""The reconciler's private working clone of the user's remote.

Manifests are read from it, status is committed from it, and cutover proposals are pushed
from it.  It is private: nothing of the user's lives in the working tree, so every sync may
hard-reset it.  What reaches the remote obeys three rules: only ``status/`` goes onto the
user's branch, a push is never forced, and a user's commit is never rewritten or dropped
(a rejected push is rebased onto the new remote head and tried again).
"""

from __future__ import annotations

import io
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import git
from gitdb import IStream

from reconciler.gitops._git import (
    NETWORK_TIMEOUT,
    GitOpsError,
    default_branch,
    fail,
    identity_env,
    redact,
    resolve_remote,
    run_git,
)

__all__ = ["GitCheckout", "GitOpsError", "ProposalBranch", "STATUS_DIR", "is_status_path"]

STATUS_DIR = "status"

# Words git prints for a push that lost a race and may succeed after a fetch and rebase.
_RETRYABLE_PUSH = (
    "fetch first",
    "non-fast-forward",
    "stale info",
    "cannot lock ref",
    "failed to update ref",
    "incorrect old value",
    "reference already exists",
)


def is_status_path(path: str) -> bool:
    """True for a repo-relative path inside ``status/`` (the only folder we write on a branch)."""
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and parts[0] == STATUS_DIR


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


def _clean_path(path: str) -> str:
    """Normalise a repo-relative path and refuse anything that could escape the tree."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or not pure.parts or any(p in ("..", ".", ".git") for p in pure.parts):
        raise ValueError(f"not a plain repo-relative path: {path!r}")
    return pure.as_posix()


class GitCheckout:
    """A private clone of one branch of the user's remote.

    ``last_pushed`` is the last commit this checkout pushed; the caller persists it (or passes
    ``on_pushed``) so a restarted daemon still recognises its own revision.  To decide whether
    a pass is due, compare the head the previous pass *read* (what :meth:`sync` returned) with
    the new head via :meth:`needs_pass` -- not ``last_pushed``: a rebased status commit sits on
    top of user commits that the previous pass never saw.
    """

    def __init__(
        self,
        source: str,
        workdir: Path,
        branch: str | None = None,
        author_name: str = "mtv-gitops",
        author_email: str = "mtv-gitops@localhost",
        *,
        last_pushed: str | None = None,
        on_pushed: Callable[[str], None] | None = None,
        push_attempts: int = 6,
        backoff: float = 0.2,
        timeout: float = NETWORK_TIMEOUT,
    ) -> None:
        if not author_email:
            raise ValueError("an author email is required: it is how we recognise our commits")
        self.source = source
        self.remote = resolve_remote(source)
        self.workdir = Path(workdir)
        self.author_name = author_name
        self.author_email = author_email
        self.last_pushed = last_pushed
        self.on_pushed = on_pushed
        self.push_attempts = max(1, push_attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._branch = branch
        self._env = identity_env(author_name, author_email)
        self._lock = threading.RLock()

    # -- basics ---------------------------------------------------------------------------

    @property
    def branch(self) -> str:
        """The branch we follow; asked of the remote's HEAD the first time it is needed."""
        if self._branch is None:
            self._branch = default_branch(self.remote, timeout=self.timeout)
        return self._branch

    @property
    def path(self) -> Path:
        """The checkout's working tree: read manifests from here after :meth:`sync`."""
        return self.workdir

    @property
    def remote_display(self) -> str:
        """The remote URL without credentials, for messages and status."""
        return redact(self.remote)

    def __repr__(self) -> str:
        return f"GitCheckout({self.remote_display!r}, {str(self.workdir)!r})"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the checkout, cloned, across several calls that must not interleave with
        another thread's sync or push (e.g. a look at a branch and the push it decides)."""
        with self._lock:
            self._ensure()
            yield

    def _git(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        full_env = dict(self._env)
        full_env.update(env or {})
        return run_git(args, cwd=self.workdir, env=full_env, timeout=timeout)

    def _must(self, what: str, *args: str, timeout: float | None = None) -> str:
        status, out, err = self._git(*args, timeout=timeout)
        if status != 0:
            raise fail(what, self.remote, err or out)
        return out

    def _has_clone(self) -> bool:
        return (self.workdir / ".git").exists()

    def _ensure(self) -> None:
        if not self._has_clone():
            self.sync()

    def _rev(self, ref: str) -> str | None:
        status, out, _ = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return out.strip() if status == 0 else None

    def _tracking(self, branch: str) -> str:
        return f"refs/remotes/origin/{branch}"

    # -- reading ---------------------------------------------------------------------------

    def sync(self) -> str:
        """Clone or fetch, hard-reset to the remote branch and return its head sha.

        The working tree is ours alone, so anything left in it (a half-done rebase, a status
        commit that never got pushed) is discarded: status is a projection and is rewritten.
        """
        with self._lock:
            if not self._has_clone():
                self.workdir.mkdir(parents=True, exist_ok=True)
                status, _, err = run_git(
                    [
                        "clone",
                        "--no-checkout",
                        "--origin",
                        "origin",
                        self.remote,
                        str(self.workdir),
                    ],
                    env=self._env,
                    timeout=self.timeout,
                )
                if status != 0:
                    raise fail("cannot clone the remote", self.remote, err)
            else:
                self._must(
                    "cannot configure the remote", "remote", "set-url", "origin", self.remote
                )
            self._abort_rebase()
            branch = self.branch
            self._fetch(branch)
            tracking = self._tracking(branch)
            if self._rev(tracking) is None:
                raise GitOpsError(
                    f"branch {branch!r} not found on the remote ({self.remote_display})"
                )
            self._must("cannot check out", "checkout", "-q", "-f", "-B", branch, tracking)
            self._must("cannot reset", "reset", "-q", "--hard", tracking)
            self._must("cannot clean", "clean", "-q", "-ffdx")
            return self._head()

    def _fetch(self, branch: str) -> None:
        refspec = f"+refs/heads/{branch}:{self._tracking(branch)}"
        status, _, err = self._git(
            "fetch", "--quiet", "--no-tags", "origin", refspec, timeout=self.timeout
        )
        if status != 0:
            raise fail("cannot fetch from the remote", self.remote, err)

    def _head(self) -> str:
        return self._must("cannot read HEAD", "rev-parse", "HEAD").strip()

    def _abort_rebase(self) -> None:
        gitdir = self.workdir / ".git"
        if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply").exists():
            self._git("rebase", "--abort")

    def desired_revision(self) -> str:
        """The newest commit that touched anything outside ``status/``: what desired state
        the checkout holds.  Status commits (ours or anyone's) do not move it."""
        with self._lock:
            self._ensure()
            out = self._must(
                "cannot find the desired revision",
                "log",
                "-1",
                "--format=%H",
                "HEAD",
                "--",
                ".",
                f":(exclude){STATUS_DIR}",
            )
            return out.strip() or self._head()

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        """Every path touched by a commit in ``old..new`` (all of ``new``'s history if ``old``
        is None or unknown here), merges compared with each parent so nothing hides in one."""
        with self._lock:
            self._ensure()
            if old is not None and self._rev(old) is None:
                old = None
            if self._rev(new) is None:
                raise GitOpsError(f"unknown revision {new!r} in the checkout")
            span = new if old is None else f"{old}..{new}"
            out = self._must(
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
        with self._lock:
            self._ensure()
            status, out, _ = self._git("log", "-1", "--format=%ae", sha)
            return status == 0 and out.strip().lower() == self.author_email.lower()

    # -- writing status ---------------------------------------------------------------------

    def write_status(self, files: Mapping[str, str | None], message: str) -> str | None:
        """Commit *files* (all under ``status/``; None deletes) and push them to the branch.

        Returns the pushed sha, or None when nothing changed.  A push that loses a race with
        a user is rebased onto the new remote head and retried with backoff; it is never
        forced.  *message* should be deterministic (no clock): it goes into the audit trail.
        """
        cleaned: dict[str, str | None] = {}
        for raw, content in files.items():
            path = _clean_path(raw)
            if not is_status_path(path):
                raise ValueError(f"status writes must stay under {STATUS_DIR}/: {raw!r}")
            cleaned[path] = content
        if not message.strip():
            raise ValueError("a commit message is required")
        with self._lock:
            self._ensure()
            branch = self.branch
            targets = {path: self._safe_target(path) for path in cleaned}  # check all first
            for path, content in cleaned.items():
                target = targets[path]
                if content is None:
                    target.unlink(missing_ok=True)
                    self._must(
                        "cannot stage", "rm", "-q", "--cached", "--ignore-unmatch", "--", path
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(content, encoding="utf-8", newline="")
                    self._must("cannot stage", "add", "--", path)
            staged, _, _ = self._git("diff", "--cached", "--quiet")
            if staged != 0:
                self._must(
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

    def _safe_target(self, path: str) -> Path:
        """The file for *path*, refusing symlinks on the way: a committed ``status`` symlink
        must not let a status write land in ``plans/`` or outside the checkout."""
        current = self.workdir
        for part in PurePosixPath(path).parts:
            current = current / part
            if current.is_symlink():
                raise GitOpsError(f"refusing to write through a symlink: {path!r}")
        return current

    def _ahead_of_remote(self, branch: str) -> bool:
        """True when local commits (e.g. an earlier push that gave up) wait to be pushed."""
        status, out, _ = self._git("rev-list", "--count", f"{self._tracking(branch)}..HEAD")
        return status == 0 and out.strip() not in ("", "0")

    def _push_with_rebase(self, branch: str) -> str | None:
        delay = self.backoff
        last_error = ""
        for attempt in range(self.push_attempts):
            if attempt:
                time.sleep(delay + random.uniform(0, delay / 2))
                delay *= 2
                self._fetch(branch)
                self._rebase_status(branch)
                if not self._ahead_of_remote(branch):
                    return None  # someone already wrote exactly this status
            sha = self._head()
            ok, retryable, err = self._push(sha, branch)
            if ok:
                self._record_push(sha, branch)
                return sha
            last_error = err
            if not retryable:
                raise fail(f"push of status to {branch!r} was refused", self.remote, err)
        raise fail(
            f"push of status to {branch!r} still rejected after {self.push_attempts} attempts",
            self.remote,
            last_error,
        )

    def _push(self, sha: str, branch: str) -> tuple[bool, bool, str]:
        """Push *sha* to the branch, fast-forward only; answer (pushed, worth retrying, error)."""
        status, out, err = self._git(
            "push",
            "--porcelain",
            "--no-verify",
            "origin",
            f"{sha}:refs/heads/{branch}",
            timeout=self.timeout,
        )
        if status == 0:
            return True, False, ""
        text = f"{out}\n{err}"
        return False, any(word in text for word in _RETRYABLE_PUSH), text

    def _record_push(self, sha: str, branch: str) -> None:
        # The remote now has sha; make the tracking ref say so without another fetch.
        self._git("update-ref", self._tracking(branch), sha)
        self.last_pushed = sha
        if self.on_pushed is not None:
            self.on_pushed(sha)

    def _rebase_status(self, branch: str) -> None:
        """Replay our unpushed status commits onto the fetched head; on conflict ours wins.

        During a rebase git calls the upstream side "ours" and the commit being replayed
        "theirs", so our status version is ``--theirs`` here.
        """
        tracking = self._tracking(branch)
        status, out, err = self._git("rebase", "--no-autostash", tracking)
        for _ in range(1000):
            if status == 0:
                return
            conflicted = self._must(
                "cannot list conflicts", "diff", "--name-only", "--diff-filter=U", "-z"
            )
            paths = [p for p in conflicted.split("\0") if p]
            if not paths or any(not is_status_path(p) for p in paths):
                self._git("rebase", "--abort")
                raise fail("cannot rebase the status commit", self.remote, err or out)
            for path in paths:
                took, _, _ = self._git("checkout", "--theirs", "--", path)
                if took == 0:
                    self._must("cannot resolve a status conflict", "add", "--", path)
                else:  # our commit deleted it
                    self._must("cannot resolve a status conflict", "rm", "-q", "--", path)
            status, out, err = self._git("-c", "core.editor=true", "rebase", "--continue")
            if status != 0 and "nothing to commit" in f"{out}{err}":
                status, out, err = self._git("rebase", "--skip")
        self._git("rebase", "--abort")
        raise GitOpsError(f"rebase of the status commit did not finish ({self.remote_display})")

    # -- proposals --------------------------------------------------------------------------

    def fetch_tracked(self) -> str:
        """Fetch the tracked branch and return its head, leaving the working tree alone: the
        user's newest files for a proposal, without the hard reset of :meth:`sync`."""
        with self._lock:
            self._ensure()
            branch = self.branch
            head = self._fetch_head(branch)
            if head is None:
                raise GitOpsError(f"branch {branch!r} not found ({self.remote_display})")
            return head

    def proposal_branch(self, branch: str, *, against: str | None = None) -> ProposalBranch:
        """Fetch *branch* and say how it stands against the tracked branch.

        *against* is the tracked branch's head to compare with (e.g. from
        :meth:`fetch_tracked`, or an earlier look's ``base``), so decisions made on it hold;
        without it the tracked branch is fetched too.
        """
        with self._lock:
            self._ensure()
            return self._look(branch, self.branch, against)

    def tracked_head(self) -> str | None:
        """The tracked branch's head as last fetched here (no network): what a preceding
        :meth:`sync`, :meth:`proposal_branch` or :meth:`push_branch` built on."""
        with self._lock:
            self._ensure()
            return self._rev(self._tracking(self.branch))

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
        with self._lock:
            self._ensure()
            base = base or self.branch
            if branch == base:
                raise ValueError("a proposal branch must differ from its base")
            look = self._look(branch, base, None)
            parent = look.base
            if look.tip is not None:
                if self._has_contents(look.tip, cleaned):
                    return look.tip
                if look.foreign:
                    raise GitOpsError(
                        f"branch {branch!r} has commits not made by {self.author_email} "
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
        with self._lock:
            self._ensure()
            if branch == self.branch:
                raise ValueError(f"proposals never go onto the tracked branch {branch!r}")
            return self._commit_and_push(branch, parent, cleaned, message)

    @staticmethod
    def _proposal_files(files: Mapping[str, str], message: str) -> dict[str, str]:
        cleaned = {_clean_path(p): c for p, c in files.items()}
        if not cleaned:
            raise ValueError("a proposal needs at least one file")
        if not message.strip():
            raise ValueError("a commit message is required")
        return cleaned

    def _look(self, branch: str, base: str, base_sha: str | None) -> ProposalBranch:
        if base_sha is None:
            base_sha = self._fetch_head(base)
            if base_sha is None:
                raise GitOpsError(f"base branch {base!r} not found ({self.remote_display})")
        tip = self._remote_branch(branch)
        foreign: list[str] = []
        if tip is not None:
            self._fetch(branch)
            tip = self._rev(self._tracking(branch)) or tip
            foreign = self._foreign_commits(base_sha, tip)
        merged = tip is not None and self._is_ancestor(tip, base_sha)
        return ProposalBranch(branch, base_sha, tip, merged, tuple(foreign))

    def _fetch_head(self, branch: str) -> str | None:
        self._fetch(branch)
        return self._rev(self._tracking(branch))

    def _commit_and_push(
        self, branch: str, parent: str, files: Mapping[str, str], message: str
    ) -> str:
        sha = self._commit_onto(parent, files, message)
        ok, _, err = self._push(sha, branch)
        if not ok:
            raise fail(f"push of proposal branch {branch!r} was refused", self.remote, err)
        self._git("update-ref", self._tracking(branch), sha)
        return sha

    def _is_ancestor(self, old: str, new: str) -> bool:
        status, _, _ = self._git("merge-base", "--is-ancestor", old, new)
        return status == 0

    def _remote_branch(self, branch: str) -> str | None:
        status, out, err = self._git(
            "ls-remote", "--heads", "origin", f"refs/heads/{branch}", timeout=self.timeout
        )
        if status != 0:
            raise fail("cannot list branches of the remote", self.remote, err)
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == f"refs/heads/{branch}":
                return sha
        return None

    def _has_contents(self, commit: str, files: Mapping[str, str]) -> bool:
        repo = git.Repo(self.workdir)
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
        out = self._must("cannot list branch commits", "log", "--format=%H %ae", f"{base}..{tip}")
        foreign = []
        for line in out.splitlines():
            sha, _, email = line.partition(" ")
            if email.strip().lower() != self.author_email.lower():
                foreign.append(sha)
        return foreign

    def _commit_onto(self, parent: str, files: Mapping[str, str], message: str) -> str:
        """Make a commit of *parent*'s tree plus *files*, without touching the working tree."""
        repo = git.Repo(self.workdir)
        try:
            modes = {}
            with tempfile.TemporaryDirectory(prefix="mtv-gitops-index-") as tmp:
                env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
                self._run_env(env, "read-tree", parent)
                for path, content in files.items():
                    data = content.encode("utf-8")
                    istream = repo.odb.store(IStream("blob", len(data), io.BytesIO(data)))
                    _, listed, _ = self._git("ls-tree", parent, "--", path)
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
        status, out, err = self._git(*args, env=env)
        if status != 0:
            raise fail(f"git {args[0]} failed", self.remote, err)
        return out
