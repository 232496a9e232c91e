"""A vCenter session: TLS verified by default, the Secret's SHA-1 thumbprint pins the certificate.

As in MTV, a Provider's Secret holds ``user``, ``password``, optional ``thumbprint`` (SHA-1 of
the vCenter certificate, ``AA:BB:...``), ``cacert`` and ``insecureSkipVerify``. With a
thumbprint, the certificate must have exactly that fingerprint (vCenter certificates are often
self-signed); without one, the certificate must chain to the system CAs or to ``cacert``;
``insecureSkipVerify: true`` alone turns checking off.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from reconciler.sources import SourceError, sha1_fingerprint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str


def endpoint(url: str) -> Endpoint:
    """``https://<vcenter>/sdk`` as in the MTV docs (a bare host name is accepted)."""
    u = urlparse(url if "://" in url else f"https://{url}")
    if u.scheme != "https" or not u.hostname:
        raise SourceError(f"vSphere url {url!r}: expected https://<vcenter>/sdk")
    return Endpoint(u.hostname, u.port or 443, u.path or "/sdk")


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class TlsPolicy:
    """How one endpoint's certificate is checked; shared by the SOAP session and the
    datastore HTTPS reads so both trust exactly the same certificate."""

    context: ssl.SSLContext
    thumbprint: str = ""  # ``AA:BB:...``; when set, the only certificate accepted

    def check(self, der: bytes | None, where: str) -> None:
        """Refuse a connection whose certificate is not the pinned one."""
        if not self.thumbprint:
            return
        digest = hashlib.sha1(der or b"").hexdigest().upper()  # noqa: S324 - MTV's pin format
        got = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
        if got != self.thumbprint:
            raise SourceError(_pin_message(where, got, self.thumbprint))


def _pin_message(where: str, got: str, want: str) -> str:
    return (
        f"the certificate of {where} has SHA-1 fingerprint {got}, not the thumbprint {want} in "
        "the secret: if the certificate was replaced on purpose, put the new fingerprint "
        f"(`mtv-gitops fingerprint {where}`) in the secret"
    )


def tls_policy(secret: dict[str, str]) -> TlsPolicy:
    """Verified by default; the thumbprint pins; ``insecureSkipVerify`` only when set."""
    thumbprint = (secret.get("thumbprint") or "").strip().upper()
    if thumbprint or _truthy(secret.get("insecureSkipVerify")):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin is compared on every connection instead
        return TlsPolicy(ctx, thumbprint)
    return TlsPolicy(ssl.create_default_context(cadata=secret.get("cacert") or None))


def untrusted_message(where: str, exc: ssl.SSLCertVerificationError) -> str:
    return (
        f"the certificate of {where} is not trusted ({exc.verify_message}): put its SHA-1 "
        f"fingerprint in the secret as 'thumbprint' (`mtv-gitops fingerprint {where}`), or its "
        "CA as 'cacert'"
    )


def connect(url: str, secret: dict[str, str], timeout: float = 30.0) -> Any:
    """A logged-in pyvmomi ServiceInstance, or a SourceError that says what to fix."""
    from pyVim import connect as pyvim
    from pyVmomi import vim

    ep = endpoint(url)
    user, password = secret.get("user", ""), secret.get("password", "")
    if not user:
        raise SourceError("the Provider's secret has no 'user'")
    policy = tls_policy(secret)
    where = f"{ep.host}:{ep.port}"
    kwargs: dict[str, Any] = {"sslContext": policy.context}
    if policy.thumbprint:
        got = sha1_fingerprint(ep.host, ep.port, timeout)
        if got != policy.thumbprint:
            raise SourceError(_pin_message(where, got, policy.thumbprint))
        kwargs["thumbprint"] = policy.thumbprint.replace(":", "")  # pyvmomi checks it again
    try:
        return pyvim.SmartConnect(
            host=ep.host,
            port=ep.port,
            path=ep.path,
            user=user,
            pwd=password,
            httpConnectionTimeout=timeout,
            **kwargs,
        )
    except vim.fault.InvalidLogin as exc:
        # status goes to git, where the user name is nobody's business: the log says who
        log.warning("vCenter %s refused the login of %r", ep.host, user)
        raise SourceError(
            f"vCenter {ep.host} refused the login of the user in the Provider's secret: "
            f"{exc.msg}; check its 'user' and 'password'"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(untrusted_message(where, exc)) from exc
    except (OSError, vim.fault.HostConnectFault) as exc:
        raise SourceError(f"cannot reach vCenter {where}: {exc}") from exc


class Login:
    """One endpoint's session, logged in again on demand: the datastore reads of a long copy
    outlive a vCenter restart or a session timeout."""

    def __init__(self, url: str, secret: dict[str, str], si: Any = None) -> None:
        self.url, self.secret = url, dict(secret)
        self.endpoint = endpoint(url)
        self.policy = tls_policy(secret)
        self._si = si
        self._lock = threading.Lock()

    @property
    def si(self) -> Any:
        with self._lock:
            if self._si is None:
                self._si = connect(self.url, self.secret)
            return self._si

    def cookie(self) -> str:
        """The SOAP session cookie (``vmware_soap_session=...``) datastore URLs accept."""
        raw = getattr(self.si._stub, "cookie", "") or ""
        return raw.split(";", 1)[0].strip()

    def relogin(self) -> None:
        with self._lock:
            self._si = connect(self.url, self.secret)

    def close(self) -> None:
        from pyVim import connect as pyvim

        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            try:
                pyvim.Disconnect(si)
            except Exception:  # noqa: BLE001 - logging out must not hide the pass result
                pass
