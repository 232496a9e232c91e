"""The reconciler's private working clone of the user's remote.

Manifests are read from it, status is committed from it, and cutover proposals are pushed
from it.  It is private: nothing of the user's lives in the working tree, so every sync may
hard-reset it.  What reaches the remote obeys three rules: only ``status/`` goes onto the
user's branch, a push is never forced, and a user's commit is never rewritten or dropped
(a rejected push is rebased onto the new remote head and tried again).

Three jobs over one locked git runner (``_git.GitRunner``), each in its own module: the sync
(``sync.py``: fetch, reset, what changed), the status push (``status_push.py``) and the
proposal branches (``proposals.py``).  :class:`GitCheckout` is the one object callers hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from reconciler.gitops._git import (
    NETWORK_TIMEOUT,
    STATUS_DIR,
    GitOpsError,
    GitRunner,
    is_status_path,
    resolve_remote,
)
from reconciler.gitops.proposals import ProposalBranch, Proposals
from reconciler.gitops.status_push import StatusPush
from reconciler.gitops.sync import RepoSync

__all__ = ["GitCheckout", "GitOpsError", "ProposalBranch", "STATUS_DIR", "is_status_path"]


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
        self.source = source
        self.git = GitRunner(
            resolve_remote(source), Path(workdir), branch, author_name, author_email, timeout
        )
        self.repo_sync = RepoSync(self.git)
        self.status_push = StatusPush(
            self.git,
            last_pushed=last_pushed,
            on_pushed=on_pushed,
            push_attempts=push_attempts,
            backoff=backoff,
        )
        self.proposals = Proposals(self.git)

    # -- basics ---------------------------------------------------------------------------

    @property
    def remote(self) -> str:
        return self.git.remote

    @property
    def workdir(self) -> Path:
        return self.git.workdir

    @property
    def timeout(self) -> float:
        return self.git.timeout

    @property
    def branch(self) -> str:
        """The branch we follow; asked of the remote's HEAD the first time it is needed."""
        return self.git.branch

    @property
    def path(self) -> Path:
        """The checkout's working tree: read manifests from here after :meth:`sync`."""
        return self.git.workdir

    @property
    def remote_display(self) -> str:
        """The remote URL without credentials, for messages and status."""
        return self.git.remote_display

    @property
    def author_name(self) -> str:
        return self.git.author_name

    @author_name.setter
    def author_name(self, name: str) -> None:
        self.git.set_identity(name, self.git.author_email)

    @property
    def author_email(self) -> str:
        """Our commits' author email: how our own commits are recognised."""
        return self.git.author_email

    @author_email.setter
    def author_email(self, email: str) -> None:
        self.git.set_identity(self.git.author_name, email)

    @property
    def last_pushed(self) -> str | None:
        return self.status_push.last_pushed

    def __repr__(self) -> str:
        return f"GitCheckout({self.remote_display!r}, {str(self.workdir)!r})"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the checkout, cloned, across several calls that must not interleave with
        another thread's sync or push (e.g. a look at a branch and the push it decides)."""
        with self.git.locked():
            yield

    # -- reading (sync.py) ------------------------------------------------------------------

    def sync(self) -> str:
        """Clone or fetch, hard-reset to the remote branch and return its head sha."""
        return self.repo_sync.sync()

    def desired_revision(self) -> str:
        """The newest commit that touched anything outside ``status/``."""
        return self.repo_sync.desired_revision()

    def input_revisions(self) -> dict[str, str]:
        """Each file the reconciler reads -> the newest commit that changed it."""
        return self.repo_sync.input_revisions()

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        """Every path touched by a commit in ``old..new``."""
        return self.repo_sync.changed_paths(old, new)

    def needs_pass(self, old: str | None, new: str) -> bool:
        """True when a commit in ``old..new`` touches a path outside ``status/``."""
        return self.repo_sync.needs_pass(old, new)

    def is_own_commit(self, sha: str) -> bool:
        """True when *sha* was authored with our configured email."""
        return self.repo_sync.is_own_commit(sha)

    # -- writing status (status_push.py) -----------------------------------------------------

    def write_status(self, files: Mapping[str, str | None], message: str) -> str | None:
        """Commit *files* (all under ``status/``; None deletes) and push them to the branch;
        the pushed sha, or None when nothing changed."""
        return self.status_push.write_status(files, message)

    def push_counts(self) -> dict[str, int]:
        """Status pushes tried again, conflicts in ``status/`` resolved, pushes given up."""
        return dict(self.status_push.counts)

    def status_pending(self) -> bool:
        """True when status committed here is not on the remote yet (no network asked)."""
        return self.status_push.pending()

    def flush_status(self) -> str | None:
        """Push status commits that wait here, rebased onto the remote's head; the pushed
        sha, or None when nothing waited."""
        return self.status_push.flush()

    # -- proposals (proposals.py) -------------------------------------------------------------

    def fetch_tracked(self) -> str:
        """Fetch the tracked branch and return its head, leaving the working tree alone."""
        return self.proposals.fetch_tracked()

    def proposal_branch(self, branch: str, *, against: str | None = None) -> ProposalBranch:
        """Fetch *branch* and say how it stands against the tracked branch."""
        return self.proposals.proposal_branch(branch, against=against)

    def tracked_head(self) -> str | None:
        """The tracked branch's head as last fetched here (no network)."""
        return self.proposals.tracked_head()

    def push_branch(
        self, branch: str, files: Mapping[str, str], message: str, base: str | None = None
    ) -> str:
        """Propose *files* on *branch*: one commit on top of the base branch, pushed."""
        return self.proposals.push_branch(branch, files, message, base)

    def push_commit(self, branch: str, parent: str, files: Mapping[str, str], message: str) -> str:
        """Commit *files* onto *parent* and push that commit to *branch*; return its sha."""
        return self.proposals.push_commit(branch, parent, files, message)
