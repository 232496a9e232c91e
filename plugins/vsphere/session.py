"""A vCenter session: TLS verified by default, the Secret's SHA-1 thumbprint pins the certificate.

As in MTV, a Provider's Secret holds ``user``, ``password``, optional ``thumbprint`` (SHA-1 of
the vCenter certificate, ``AA:BB:...``), ``cacert`` and ``insecureSkipVerify``. With a
thumbprint, the certificate must have exactly that fingerprint (vCenter certificates are often
self-signed); without one, the certificate must chain to the system CAs or to ``cacert``;
``insecureSkipVerify: true`` alone turns checking off.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from reconciler.sources import SourceError, sha1_fingerprint


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


def connect(url: str, secret: dict[str, str], timeout: float = 30.0) -> Any:
    """A logged-in pyvmomi ServiceInstance, or a SourceError that says what to fix."""
    from pyVim import connect as pyvim
    from pyVmomi import vim

    ep = endpoint(url)
    user, password = secret.get("user", ""), secret.get("password", "")
    if not user:
        raise SourceError("the Provider's secret has no 'user'")
    thumbprint = (secret.get("thumbprint") or "").strip().upper()
    kwargs: dict[str, Any] = {}
    if thumbprint:
        got = sha1_fingerprint(ep.host, ep.port, timeout)
        if got != thumbprint:
            raise SourceError(
                f"the certificate of {ep.host}:{ep.port} has SHA-1 fingerprint {got}, not the "
                f"thumbprint {thumbprint} in the Provider's secret: if the certificate was "
                "replaced on purpose, put the new fingerprint (`mtv-gitops fingerprint "
                f"{ep.host}:{ep.port}`) in the secret"
            )
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # pinned above, and pyvmomi checks it again
        kwargs.update(sslContext=ctx, thumbprint=thumbprint.replace(":", ""))
    elif _truthy(secret.get("insecureSkipVerify")):
        kwargs.update(disableSslCertValidation=True)
    else:
        ctx = ssl.create_default_context(cadata=secret.get("cacert") or None)
        kwargs.update(sslContext=ctx)
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
        raise SourceError(f"vCenter {ep.host} refused the login of {user!r}: {exc.msg}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise SourceError(
            f"the certificate of {ep.host}:{ep.port} is not trusted ({exc.verify_message}): put "
            "its SHA-1 fingerprint in the secret as 'thumbprint' (`mtv-gitops fingerprint "
            f"{ep.host}:{ep.port}`), or its CA as 'cacert'"
        ) from exc
    except (OSError, vim.fault.HostConnectFault) as exc:
        raise SourceError(f"cannot reach vCenter {ep.host}:{ep.port}: {exc}") from exc
