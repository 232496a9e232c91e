"""Running git for the reconciler: fixed identity, no prompts, no credentials in errors.

Every git call in this package goes through :func:`run_git`, so commits never depend on the
host's global git config (CI has no ``user.name``), a missing credential fails instead of
waiting for a prompt, the credentials of ``$MTV_GITOPS_GIT_CREDENTIALS`` are used (see
``credentials.py``), and a URL's ``user:password@`` never reaches a message or a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

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
