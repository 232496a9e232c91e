"""Git credentials for a reconciler that runs unattended, from a folder of files.

In a cluster the folder is a mounted Secret (``$MTV_GITOPS_GIT_CREDENTIALS``) with the key names
of Kubernetes' own Secret types: ``username`` + ``password`` (or ``token``) for HTTPS, as in
``kubernetes.io/basic-auth``; ``ssh-privatekey`` + ``known_hosts`` for SSH, as in
``kubernetes.io/ssh-auth``.  Git gets them through a credential helper that reads the files
when git asks (so a rotated Secret is picked up) and through ``GIT_SSH_COMMAND``; a secret value
is never put on a command line, in the environment, in a message or in a log.

A credential helper rather than ``GIT_ASKPASS``: every git call runs with
``credential.interactive=never``, which newer git applies to askpass programs too.
"""

from __future__ import annotations

import atexit
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CREDENTIALS_ENV", "GitAuth", "git_auth"]

CREDENTIALS_ENV = "MTV_GITOPS_GIT_CREDENTIALS"
PASSWORD_KEYS = ("password", "token")
SSH_KEY = "ssh-privatekey"
KNOWN_HOSTS = "known_hosts"
HELPER = Path(__file__).with_name("_credential_helper.py")


@dataclass(frozen=True)
class GitAuth:
    """What a git call needs for the remote's credentials: ``-c`` settings and environment."""

    config: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def git_auth(environ: Mapping[str, str] | None = None) -> GitAuth:
    """The settings for the credentials folder named in *environ* (default: ``os.environ``).

    Nothing when the variable is unset, so a laptop keeps using the user's own git config and
    SSH agent; a ``GIT_SSH_COMMAND`` already set wins over the folder's SSH key.
    """
    environ = os.environ if environ is None else environ
    folder = environ.get(CREDENTIALS_ENV, "")
    if not folder:
        return GitAuth()
    root = Path(folder)
    config: tuple[str, ...] = ()
    env: dict[str, str] = {}
    if any((root / key).is_file() for key in PASSWORD_KEYS):
        helper = shlex.join([sys.executable, "-I", str(HELPER), str(root)])
        # the empty value drops helpers configured on the host, so only ours answers
        config = ("credential.helper=", f"credential.helper=!{helper}")
    key = root / SSH_KEY
    if key.is_file() and "GIT_SSH_COMMAND" not in environ:
        ssh = ["ssh", "-i", _KEYS.private_copy(key), "-o", "IdentitiesOnly=yes"]
        ssh += ["-o", "BatchMode=yes"]
        known = root / KNOWN_HOSTS
        if known.is_file():
            ssh += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
    return GitAuth(config, env)


class _KeyCopies:
    """ssh refuses a key that others may read, and a Secret mounted with ``fsGroup`` is
    group-readable: ssh gets a private copy (0600, in a 0700 folder), renewed when the Secret
    changes and removed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folder: Path | None = None

    def private_copy(self, source: Path) -> str:
        data = source.read_bytes()
        if not data.endswith(b"\n"):
            data += b"\n"  # OpenSSH cannot parse a key without its final newline
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="mtv-gitops-ssh-"))
                atexit.register(shutil.rmtree, self._folder, True)
            dest = self._folder / "id"
            if not dest.is_file() or dest.read_bytes() != data:
                tmp = self._folder / "id.new"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, dest)
            return str(dest)


_KEYS = _KeyCopies()
