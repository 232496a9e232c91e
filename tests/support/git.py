"""Git helpers for tests: run git as a user, push like a careful user, inspect a remote."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

USER_ENV = {
    "GIT_AUTHOR_NAME": "Ada User",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada User",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, **USER_ENV}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stderr}")
    return proc.stdout.strip()


def user_commit(clone: Path, path: str, content: str, message: str) -> str:
    target = clone / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(clone, "add", path)
    git(clone, "commit", "-q", "-m", message)
    return git(clone, "rev-parse", "HEAD")


def user_push(clone: Path) -> None:
    """Push like a careful user: on rejection pull --rebase and try again, never force (each
    rejection needs someone else's push in between, so the tries bound the races lost)."""
    for _ in range(200):
        proc = subprocess.run(
            ["git", "push", "-q", "origin", "HEAD:main"],
            cwd=clone,
            env={**os.environ, **USER_ENV},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return
        git(clone, "pull", "-q", "--rebase", "origin", "main")
    raise AssertionError("user could not push")


def remote_head(remote: Path) -> str:
    return git(remote, "rev-parse", "refs/heads/main")


def is_ancestor(repo: Path, old: str, new: str) -> bool:
    return (
        subprocess.run(["git", "merge-base", "--is-ancestor", old, new], cwd=repo).returncode == 0
    )


def fresh_clone(tmp_path: Path, remote: Path, name: str = "verify") -> Path:
    target = tmp_path / name
    git(tmp_path, "clone", "-q", str(remote), str(target))
    return target
