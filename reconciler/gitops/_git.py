"""Running git for the reconciler: fixed identity, no prompts, no credentials in errors.

Every git call in this package goes through :func:`run_git`, so commits never depend on the
host's global git config (CI has no ``user.name``), a missing credential fails instead of
waiting for a prompt, the credentials of ``$MTV_GITOPS_GIT_CREDENTIALS`` are used (see
``credentials.py``), and a URL's ``user:password@`` never reaches a message or a log.

:class:`GitRunner` is the private clone's git, one caller at a time: the sync
(``sync.py``), the status push (``status_push.py``) and the proposal branches
(``proposals.py``) all run their commands through one runner and hold its lock across the
commands that must not interleave.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import git

from reconciler.gitops.credentials import git_auth

# userinfo up to the last "@" of the URL: a token may hold "/" or "@" (unencoded, as people paste
# them), and telling too little of a URL is safer than telling a piece of its password
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s'\"]+@")

# Settings that must hold whatever the host's config says.
_CONFIG = (
    "core.hooksPath=/dev/null",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "advice.detachedHead=false",
    "init.defaultBranch=main",
    "rebase.autoStash=false",
    "rebase.autoSquash=false",
    "rebase.updateRefs=false",
    "credential.interactive=never",
)

NETWORK_TIMEOUT = 120.0
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


class GitOpsError(RuntimeError):
    """A git operation against the user's remote failed; the message is safe to show and log."""


def redact(text: str) -> str:
    """Strip ``user:password@`` from every URL in *text*: errors end up in status and logs."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def identity_env(name: str, email: str) -> dict[str, str]:
    """Author and committer for commits we make, independent of any git config."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_EDITOR": "true",
        "GIT_SEQUENCE_EDITOR": "true",
        "GIT_MERGE_AUTOEDIT": "no",
    }


def run_git(
    args: Sequence[str],
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> tuple[int, str, str]:
    """Run ``git -c ... <args>`` and return (status, stdout, stderr) without raising.

    GitPython's own exceptions would carry the full command line (and with it any URL with a
    password), so callers turn a failure into a :class:`GitOpsError` with :func:`fail`.
    """
    auth = git_auth()
    command: list[str] = ["git"]
    for setting in (*_CONFIG, *auth.config):
        command += ["-c", setting]
    command += list(args)
    full_env = {"GIT_TERMINAL_PROMPT": "0", **auth.env}
    full_env.update(env or {})
    runner = git.Git(str(cwd) if cwd is not None else None)
    status, out, err = runner.execute(
        command,
        with_extended_output=True,
        with_exceptions=False,
        kill_after_timeout=timeout,
        env=full_env,
        strip_newline_in_stdout=False,
    )
    return int(status or 0), str(out), str(err)


def fail(what: str, remote: str | None, stderr: str) -> GitOpsError:
    """Build the error a user reads: what we tried, against which remote, and git's words."""
    where = f" ({redact(remote)})" if remote else ""
    detail = redact(stderr.strip()) or "no output from git"
    return GitOpsError(f"{what}{where}: {detail}")


def resolve_remote(source: str) -> str:
    """The remote we talk to for *source*: a URL, a bare repo, or the user's own clone.

    Given a non-bare clone we use its ``origin`` (the user hands us their clone; we talk to
    their remote); a clone without ``origin`` is itself the remote.
    """
    path = Path(source).expanduser()
    if "://" in source or not path.exists():
        return source
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return str(path.resolve())
    try:
        if repo.bare:
            return str(Path(repo.git_dir).resolve())
        names = [r.name for r in repo.remotes]
        if "origin" not in names:
            return str(Path(repo.working_tree_dir or path).resolve())
        url = repo.remotes.origin.url
        # A relative local path in a clone's config is relative to that clone's worktree.
        if "://" not in url and not _is_scp_like(url) and not Path(url).is_absolute():
            url = str((Path(repo.working_tree_dir or path) / url).resolve())
        return url
    finally:
        repo.close()


def _is_scp_like(url: str) -> bool:
    """``user@host:path`` (ssh shorthand) as opposed to a local path."""
    head = url.split("/", 1)[0]
    return ":" in head and not re.match(r"^[a-zA-Z]:\\", url)


def default_branch(remote: str, timeout: float = NETWORK_TIMEOUT) -> str:
    """The branch the remote's HEAD names, else ``main`` or ``master``, whichever exists."""
    status, out, err = run_git(["ls-remote", "--symref", remote, "HEAD"], timeout=timeout)
    if status != 0:
        raise fail("cannot read the default branch of the remote", remote, err)
    for line in out.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    status, out, err = run_git(["ls-remote", "--heads", remote, "main", "master"], timeout=timeout)
    if status != 0:
        raise fail("cannot list branches of the remote", remote, err)
    heads = {line.split("\t", 1)[1] for line in out.splitlines() if "\t" in line}
    if "refs/heads/main" not in heads and "refs/heads/master" in heads:
        return "master"
    return "main"


def is_status_path(path: str) -> bool:
    """True for a repo-relative path inside ``status/`` (the only folder we write on a branch)."""
    parts = PurePosixPath(path).parts
    return len(parts) > 1 and parts[0] == STATUS_DIR


def clean_path(path: str) -> str:
    """Normalise a repo-relative path and refuse anything that could escape the tree."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or not pure.parts or any(p in ("..", ".", ".git") for p in pure.parts):
        raise ValueError(f"not a plain repo-relative path: {path!r}")
    return pure.as_posix()


class GitRunner:
    """git in the private clone of one branch of a remote, under one lock.

    ``ensure_clone`` (set by the owner of the clone) makes the clone when a command needs one
    and none exists yet.
    """

    def __init__(
        self,
        remote: str,
        workdir: Path,
        branch: str | None,
        author_name: str,
        author_email: str,
        timeout: float = NETWORK_TIMEOUT,
    ) -> None:
        self.remote = remote
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.lock = threading.RLock()
        self.ensure_clone: Callable[[], object] | None = None
        self._branch = branch
        self.set_identity(author_name, author_email)

    def set_identity(self, name: str, email: str) -> None:
        """Who our commits are by; the email is how our own commits are recognised."""
        if not email:
            raise ValueError("an author email is required: it is how we recognise our commits")
        self.author_name, self.author_email = name, email
        self.env = identity_env(name, email)

    @property
    def branch(self) -> str:
        """The branch we follow; asked of the remote's HEAD the first time it is needed."""
        if self._branch is None:
            self._branch = default_branch(self.remote, timeout=self.timeout)
        return self._branch

    @property
    def remote_display(self) -> str:
        """The remote URL without credentials, for messages and status."""
        return redact(self.remote)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the runner, cloned, across several commands."""
        with self.lock:
            self.ensure()
            yield

    def ensure(self) -> None:
        if not self.has_clone() and self.ensure_clone is not None:
            self.ensure_clone()

    def has_clone(self) -> bool:
        return (self.workdir / ".git").exists()

    def run(
        self, *args: str, timeout: float | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        """``git <args>`` in the clone: (status, stdout, stderr), never raising."""
        full_env = dict(self.env)
        full_env.update(env or {})
        return run_git(args, cwd=self.workdir, env=full_env, timeout=timeout)

    def must(self, what: str, *args: str, timeout: float | None = None) -> str:
        """``git <args>``'s stdout; :class:`GitOpsError` saying *what* failed otherwise."""
        status, out, err = self.run(*args, timeout=timeout)
        if status != 0:
            raise fail(what, self.remote, err or out)
        return out

    def rev(self, ref: str) -> str | None:
        status, out, _ = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        return out.strip() if status == 0 else None

    def tracking(self, branch: str) -> str:
        return f"refs/remotes/origin/{branch}"

    def fetch(self, branch: str) -> None:
        refspec = f"+refs/heads/{branch}:{self.tracking(branch)}"
        status, _, err = self.run(
            "fetch", "--quiet", "--no-tags", "origin", refspec, timeout=self.timeout
        )
        if status != 0:
            raise fail("cannot fetch from the remote", self.remote, err)

    def fetch_head(self, branch: str) -> str | None:
        """Fetch *branch* and return its head, None when the remote has no such branch."""
        self.fetch(branch)
        return self.rev(self.tracking(branch))

    def head(self) -> str:
        return self.must("cannot read HEAD", "rev-parse", "HEAD").strip()

    def is_ancestor(self, old: str, new: str) -> bool:
        status, _, _ = self.run("merge-base", "--is-ancestor", old, new)
        return status == 0

    def push(self, sha: str, branch: str) -> tuple[bool, bool, str]:
        """Push *sha* to the branch, fast-forward only; answer (pushed, worth retrying, error)."""
        status, out, err = self.run(
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
