"""Cheap polling of the user's remote: one ``git ls-remote``, no fetch, no clone.

The daemon polls often and fetches only when the head moved and is not the revision it
pushed itself, like Flux's image-automation skipping its own commits.
"""

from __future__ import annotations

from reconciler.gitops._git import NETWORK_TIMEOUT, GitOpsError, fail, resolve_remote, run_git

__all__ = ["RemoteHead"]


class RemoteHead:
    """Ask a remote where a branch points, without transferring any objects."""

    @staticmethod
    def poll(source: str, branch: str, timeout: float = NETWORK_TIMEOUT) -> str:
        """The sha at ``refs/heads/<branch>`` on *source* (URL, bare repo or a user's clone,
        whose ``origin`` is asked).  Raises :class:`GitOpsError` if unreachable or missing."""
        remote = resolve_remote(source)
        ref = f"refs/heads/{branch}"
        status, out, err = run_git(["ls-remote", "--heads", remote, ref], timeout=timeout)
        if status != 0:
            raise fail("cannot reach the remote", remote, err)
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        raise GitOpsError(f"branch {branch!r} not found on the remote")
