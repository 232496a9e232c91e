"""An oVirt engine session: TLS verified by the Provider secret's ``cacert`` (the engine's CA,
as MTV asks for), ``insecureSkipVerify: "true"`` alone turns checking off.

The secret holds ``user`` (``admin@internal``), ``password``, ``cacert`` and
``insecureSkipVerify``, as in MTV. The same trust serves the engine API (ovirtsdk4, through
pycurl, which needs the CA as a file) and the image transfers read from the imageio daemons
(an engine's CA signs its hosts' certificates).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from reconciler.sources import SourceError

log = logging.getLogger(__name__)
API_PATH = "/ovirt-engine/api"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    url: str  # https://<engine>/ovirt-engine/api


def endpoint(url: str) -> Endpoint:
    """``https://<engine>/ovirt-engine/api`` as in the MTV docs (a bare host name is accepted)."""
    u = urlparse(url if "://" in url else f"https://{url}")
    if u.scheme != "https" or not u.hostname:
        raise SourceError(f"oVirt url {url!r}: expected https://<engine>/ovirt-engine/api")
    path = u.path.rstrip("/") or API_PATH
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    netloc = f"{host}:{u.port}" if u.port else host
    return Endpoint(u.hostname, u.port or 443, f"https://{netloc}{path}")


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() == "true"


class Trust:
    """How certificates are checked: the secret's CA (else the system's), or not at all when
    ``insecureSkipVerify`` is "true". Keeps the CA in a file for pycurl while it lives."""

    def __init__(self, secret: dict[str, str]) -> None:
        self.insecure = _truthy(secret.get("insecureSkipVerify"))
        self.cacert = "" if self.insecure else (secret.get("cacert") or "").strip()
        self._file: str | None = None
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            try:
                ctx = ssl.create_default_context(cadata=self.cacert or None)
            except ssl.SSLError as exc:
                raise SourceError(
                    f"the Provider secret's 'cacert' is not a PEM certificate ({exc.reason}): "
                    "put the engine's CA there (https://<engine>/ovirt-engine/services/"
                    "pki-resource?resource=ca-certificate&format=X509-PEM-CA)"
                ) from exc
        self.context = ctx

    def ca_file(self) -> str | None:
        """A file holding the CA, for pycurl; None: the system's CAs (or no checking)."""
        if self.insecure or not self.cacert:
            return None
        if self._file is None:
            fd, path = tempfile.mkstemp(prefix="mtv-gitops-ovirt-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(self.cacert + "\n")
            self._file = path
        return self._file

    def close(self) -> None:
        if self._file is not None:
            try:
                os.unlink(self._file)
            except OSError:
                pass
            self._file = None


def untrusted_message(where: str, why: str) -> str:
    return (
        f"the certificate of the oVirt engine {where} is not trusted ({why}): put the engine's "
        "CA in the Provider secret as 'cacert' (from https://<engine>/ovirt-engine/services/"
        "pki-resource?resource=ca-certificate&format=X509-PEM-CA), or set insecureSkipVerify: "
        '"true" to skip the check'
    )


def probe(ep: Endpoint, trust: Trust, timeout: float) -> None:
    """Reach the engine and check its certificate with Python's ssl first: its errors say
    which of the two failed (pycurl's only give a code)."""
    where = f"{ep.host}:{ep.port}"
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout) as sock:
            with trust.context.wrap_socket(sock, server_hostname=ep.host):
                pass
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(untrusted_message(where, exc.verify_message or str(exc))) from exc
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(
            f"cannot reach the oVirt engine {where}: {exc}; check the Provider's url and that "
            "the engine answers on it"
        ) from exc


def connect(url: str, secret: dict[str, str], trust: Trust, timeout: float = 30.0) -> Any:
    """A logged-in ovirtsdk4 Connection, or a SourceError that says what to fix."""
    import ovirtsdk4 as sdk

    ep = endpoint(url)
    user, password = secret.get("user", ""), secret.get("password", "")
    if not user:
        raise SourceError("the Provider's secret has no 'user' (an engine user: admin@internal)")
    probe(ep, trust, timeout)
    conn = sdk.Connection(
        url=ep.url,
        username=user,
        password=password,
        ca_file=trust.ca_file(),
        insecure=trust.insecure,
        timeout=int(timeout),
        connections=1,
    )
    try:
        conn.test(raise_exception=True)
    except sdk.AuthError as exc:
        conn.close(logout=False)
        log.warning("oVirt engine %s refused the login of %r", ep.host, user)
        # status goes to git, where the user name is nobody's business: the log says who
        raise SourceError(
            f"the oVirt engine {ep.host} refused the login of the user in the Provider's "
            "secret: check its 'user' (with its profile, e.g. admin@internal) and 'password'"
        ) from exc
    except sdk.Error as exc:
        conn.close(logout=False)
        text = str(exc)
        if "certificate" in text.lower() or "ssl" in text.lower():
            raise SourceError(untrusted_message(f"{ep.host}:{ep.port}", text)) from exc
        raise SourceError(f"cannot reach the oVirt engine {ep.host}:{ep.port}: {text}") from exc
    return conn


class Login:
    """One engine's session, logged in again on demand (a token that expired, an engine
    restarted under a long copy). ovirtsdk4's connection serialises its requests itself."""

    def __init__(self, url: str, secret: dict[str, str], trust: Trust, conn: Any) -> None:
        self.url, self.secret, self.trust = url, dict(secret), trust
        self.endpoint = endpoint(url)
        self._conn = conn
        self._lock = threading.Lock()
        # one engine request at a time: disks copied in parallel share the session
        self.lock = threading.RLock()

    @property
    def conn(self) -> Any:
        with self._lock:
            if self._conn is None:
                self._conn = connect(self.url, self.secret, self.trust)
            return self._conn

    def system(self) -> Any:
        return self.conn.system_service()

    def relogin(self) -> None:
        with self._lock:
            old, self._conn = self._conn, None
        if old is not None:
            try:
                old.close(logout=False)
            except Exception:  # noqa: BLE001 - the old session may already be gone
                pass

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - logging out must not hide the pass result
                pass
        self.trust.close()
