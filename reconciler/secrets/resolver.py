"""Resolve a Provider's ``spec.secret`` without ever keeping credentials in git.

In a cluster: the Secret itself, read from the cluster the reconciler runs in. Outside (and on
top): the YAML file named by ``MTV_GITOPS_SECRETS`` maps ``<namespace>/<name>`` to the
Secret's ``stringData`` keys, and each key can be overridden by an environment variable
``MTV_GITOPS_SECRET_<NAMESPACE>_<NAME>_<KEY>`` (upper case, ``-`` and ``/`` become ``_``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.plugin_manager import secret_keys as plugin_secret_keys

if TYPE_CHECKING:
    from reconciler.manifests.loader import Desired


SECRETS_ENV = "MTV_GITOPS_SECRETS"
# the keys every Provider Secret may have (a destination's token and CA among them); each
# source plugin adds the keys it reads (mtv_gitops_secret_keys)
KEYS = ("user", "password", "url", "insecureSkipVerify", "cacert", "token")


def secret_keys() -> tuple[str, ...]:
    """The keys passed on from the environment and into transfer Jobs: the shared ones and
    those every installed source plugin declares."""
    return KEYS + tuple(k for k in plugin_secret_keys() if k not in KEYS)


class SecretError(Exception):
    """A secret could not be found or read; the message never contains a secret value."""


def env_name(namespace: str, name: str, key: str) -> str:
    raw = f"MTV_GITOPS_SECRET_{namespace}_{name}_{key}"
    return re.sub(r"[^A-Za-z0-9]", "_", raw).upper()


def _text(value: object) -> str:
    """A Secret's value as the string a Secret holds: YAML ``true`` is "true", not "True"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


ClusterSecrets = Callable[[str, str], "dict[str, str] | None"]


class SecretResolver:
    """Looks secrets up in the cluster (when given a reader for it), then the secrets file,
    then lets the environment override keys."""

    def __init__(
        self,
        path: Path | None = None,
        environ: dict[str, str] | None = None,
        plaintext: dict[tuple[str, str], dict[str, str]] | None = None,
        cluster: ClusterSecrets | None = None,
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        env_path = self.environ.get(SECRETS_ENV)
        self.path = path or (Path(env_path) if env_path else None)
        self.plaintext = plaintext or {}
        # (namespace, name) -> the Secret's values, None when absent; raises SecretError
        self.cluster = cluster
        self._file: dict[str, dict[str, str]] | None = None

    def _load(self) -> dict[str, dict[str, str]]:
        if self._file is None:
            self._file = {}
            if self.path is not None:
                try:
                    text = self.path.read_text()
                except OSError as exc:
                    raise SecretError(
                        f"cannot read secrets file {self.path}: {type(exc).__name__}"
                    ) from None
                try:
                    from ruamel.yaml import YAML  # only a secrets file needs it

                    data = YAML(typ="safe").load(text) or {}
                except Exception as exc:  # noqa: BLE001 - told without the values it read
                    from reconciler.secrets.yaml_errors import describe as describe_yaml_error

                    problem = describe_yaml_error(exc)
                    raise SecretError(
                        f"cannot read secrets file {self.path}: "
                        f"{problem.where()}: {problem.message}"
                    ) from None
                if not isinstance(data, dict):
                    raise SecretError(f"secrets file {self.path}: expected a mapping of ns/name")
                for k, v in data.items():
                    if not isinstance(v, dict):
                        raise SecretError(f"secrets file {self.path}: {k} must be a mapping")
                    self._file[str(k)] = {str(a): _text(b) for a, b in v.items()}
        return self._file

    def file_values(self) -> list[str]:
        """Every value of the secrets file (what ``gather`` redacts)."""
        return [v for entry in self._load().values() for v in entry.values()]

    def resolve(self, namespace: str, name: str) -> dict[str, str]:
        """The Secret's keys; raises SecretError naming where it looked when not found."""
        found = dict(self.plaintext.get((namespace, name), {}))
        if self.cluster is not None:
            found.update(self.cluster(namespace, name) or {})
        found.update(self._load().get(f"{namespace}/{name}", {}))
        for key in secret_keys():
            value = self.environ.get(env_name(namespace, name, key))
            if value is not None:
                found[key] = value
        if not found:
            where = f"the secrets file {self.path}" if self.path else f"${SECRETS_ENV} (unset)"
            cluster = "create it in the cluster, or " if self.cluster is not None else ""
            raise SecretError(
                f"secret {namespace}/{name} not found: {cluster}add '{namespace}/{name}:' to "
                f"{where} or set {env_name(namespace, name, 'password')} and friends"
            )
        return found


def plaintext_secrets(desired: Desired) -> dict[tuple[str, str], dict[str, str]]:
    """Secrets kept in the repo, which the loader admits only when the repo config allows it."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for key, m in desired.of("Secret").items():
        values: dict[str, str] = {}
        for k, v in m.spec.data.items():
            try:
                values[k] = base64.b64decode(v, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # a Secret's data must be base64; a broken key is simply absent
        values.update(m.spec.stringData)
        out[key] = values
    return out
