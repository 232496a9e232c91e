"""A Keystone v3 session through openstacksdk, from an MTV OpenStack Provider Secret.

The Secret's keys are Forklift's: ``username`` (or ``user``) / ``userID``, ``password``,
``domainName``, ``projectName`` / ``projectID``, ``regionName``; application credentials
(``applicationCredentialID`` or ``applicationCredentialName``, ``applicationCredentialSecret``);
or a ``token``. ``authType`` (``password``, ``applicationcredential``, ``token``) says which when
more than one kind is present. TLS is verified against the system CAs or the Secret's
``cacert``; ``insecureSkipVerify: "true"`` alone turns checking off.

A failure says which part is wrong (the credentials, the project, the region, the endpoint, the
certificate), so the Provider's condition tells the user what to fix; the core backs off.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from reconciler.sources import SourceError

log = logging.getLogger(__name__)
# the services a migration uses; every one must be in the region's catalog
SERVICES = {"compute": "Nova", "block-storage": "Cinder", "image": "Glance", "network": "Neutron"}
CATALOG_ALIASES = {"block-storage": ("block-storage", "volumev3", "volume")}


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() == "true"


def auth_kind(secret: dict[str, str]) -> str:
    """``password``, ``applicationcredential`` or ``token``: ``authType`` when set, else the
    kind whose keys the Secret holds."""
    kind = (secret.get("authType") or "").strip().lower().replace("_", "")
    if kind in ("password", "applicationcredential", "token"):
        return kind
    if kind:
        raise SourceError(
            f"the Provider's secret has authType {secret['authType']!r}: expected password, "
            "applicationcredential or token"
        )
    if secret.get("applicationCredentialSecret"):
        return "applicationcredential"
    if secret.get("token") and not secret.get("password"):
        return "token"
    return "password"


@dataclass
class Credentials:
    """What openstacksdk is given, and a CA file written from ``cacert`` (removed on close)."""

    auth_url: str
    kind: str
    auth: dict[str, str]
    region: str
    verify: bool | str
    _cafile: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        if self._cafile:
            try:
                os.unlink(self._cafile)
            except OSError:
                pass
            self._cafile = ""


def credentials(url: str, secret: dict[str, str]) -> Credentials:
    """The Provider's url (``https://<keystone>/v3``) and Secret as openstacksdk arguments."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise SourceError(f"OpenStack url {url!r}: expected https://<identity service>/v3")
    kind = auth_kind(secret)
    domain = secret.get("domainName") or "Default"
    auth: dict[str, str] = {"auth_url": url}
    project = {
        "project_name": secret.get("projectName", ""),
        "project_id": secret.get("projectID", ""),
    }
    project = {k: v for k, v in project.items() if v}
    if kind == "password":
        user = secret.get("username") or secret.get("user") or ""
        if not (user or secret.get("userID")) or not secret.get("password"):
            raise SourceError(
                "the Provider's secret needs 'username' (or 'userID') and 'password', or "
                "'applicationCredentialID' and 'applicationCredentialSecret', or a 'token'"
            )
        if not project:
            raise SourceError("the Provider's secret names no project: set 'projectName'")
        auth |= {
            "password": secret["password"],
            "user_domain_name": domain,
            "project_domain_name": domain,
            **project,
        }
        auth |= {"user_id": secret["userID"]} if secret.get("userID") else {"username": user}
    elif kind == "applicationcredential":
        if not secret.get("applicationCredentialSecret"):
            raise SourceError("the Provider's secret has no 'applicationCredentialSecret'")
        auth["application_credential_secret"] = secret["applicationCredentialSecret"]
        if secret.get("applicationCredentialID"):
            auth["application_credential_id"] = secret["applicationCredentialID"]
        else:
            name = secret.get("applicationCredentialName", "")
            user = secret.get("username") or secret.get("user") or ""
            if not name or not (user or secret.get("userID")):
                raise SourceError(
                    "the Provider's secret needs 'applicationCredentialID', or "
                    "'applicationCredentialName' with 'username' (or 'userID')"
                )
            auth |= {"application_credential_name": name, "user_domain_name": domain}
            auth |= {"user_id": secret["userID"]} if secret.get("userID") else {"username": user}
    else:
        if not secret.get("token"):
            raise SourceError("the Provider's secret has no 'token'")
        auth |= {"token": secret["token"], "project_domain_name": domain, **project}
    verify: bool | str = True
    cafile = ""
    if _truthy(secret.get("insecureSkipVerify")):
        verify = False
    elif secret.get("cacert"):
        fd, cafile = tempfile.mkstemp(prefix="mtv-gitops-openstack-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as f:
            f.write(secret["cacert"])
        verify = cafile
    return Credentials(url, kind, auth, secret.get("regionName", ""), verify, cafile)


def connect(url: str, secret: dict[str, str], timeout: float = 60.0) -> tuple[Any, Credentials]:
    """A Connection whose token is issued and whose region has every service, or a
    SourceError that says what is wrong."""
    import openstack

    creds = credentials(url, secret)
    auth_type = {
        "password": "v3password",
        "applicationcredential": "v3applicationcredential",
        "token": "v3token",
    }[creds.kind]
    try:
        conn = openstack.connection.Connection(
            auth_type=auth_type,
            auth=creds.auth,
            region_name=creds.region or None,
            verify=creds.verify,
            api_timeout=timeout,
        )
        conn.authorize()
    except Exception as exc:  # noqa: BLE001 - sorted below into what the user must fix
        try:
            message = _login_failure(url, secret, creds, exc)
        finally:
            creds.close()
        raise SourceError(message) from exc
    try:
        _check_region(conn, creds)
    except BaseException:
        conn.close()
        creds.close()
        raise
    return conn, creds


def _cause(exc: BaseException) -> BaseException:
    """The keystoneauth error behind openstacksdk's SDKException (``authorize()`` wraps it)."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
        from keystoneauth1 import exceptions as ks

        if isinstance(seen, ks.ClientException):
            return seen
    return exc


def _login_failure(url: str, secret: dict[str, str], creds: Credentials, exc: Exception) -> str:
    from keystoneauth1 import exceptions as ks

    cause = _cause(exc)
    where = urlparse(url).netloc
    text = f"{cause}"
    if isinstance(cause, ks.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the certificate of Keystone at {where} is not trusted ({_short(text)}): put its CA "
            "in the Provider's secret as 'cacert' (or set insecureSkipVerify: \"true\")"
        )
    if isinstance(cause, ks.ConnectFailure | ks.ConnectTimeout | ks.DiscoveryFailure) and not (
        isinstance(cause, ks.http.HttpError)
    ):
        return f"cannot reach Keystone at {url}: {_short(text)}; check the Provider's url"
    token_unknown = creds.kind == "token" and isinstance(cause, ks.http.NotFound)
    if token_unknown or isinstance(cause, ks.http.Unauthorized) or "requires auth" in text:
        if creds.kind == "password" and _unscoped_login_works(creds):
            project = secret.get("projectName") or secret.get("projectID")
            return (
                f"Keystone at {where} accepted the user in the Provider's secret but not project "
                f"{project!r} (domain {secret.get('domainName') or 'Default'}): it does not exist "
                "or the user has no role in it; check 'projectName' and 'domainName'"
            )
        log.warning("Keystone %s refused the credentials (%s)", where, creds.kind)
        what = {
            "password": "the user name or password",
            "applicationcredential": "the application credential (id or secret)",
            "token": "the token (expired or revoked?)",
        }[creds.kind]
        return f"Keystone at {where} refused the credentials in the Provider's secret: check {what}"
    if isinstance(cause, ks.http.NotFound):
        return f"Keystone at {where}: {_short(text)}; check the Provider's url (…/v3)"
    return f"logging in to Keystone at {where} failed: {type(cause).__name__}: {_short(text)}"


def _short(text: str) -> str:
    return text if len(text) < 300 else text[:300] + "…"


def _unscoped_login_works(creds: Credentials) -> bool:
    """Whether the user and password are good without the project (to say which is wrong)."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = {k: v for k, v in creds.auth.items() if not k.startswith("project_")}
    try:
        sess = session.Session(auth=v3.Password(**auth), verify=creds.verify)
        sess.get_token()
    except Exception:  # noqa: BLE001 - any failure: the credentials themselves
        return False
    return True


def _check_region(conn: Any, creds: Credentials) -> None:
    """Every service a migration uses has an endpoint in the region, else say which."""
    access = conn.session.auth.get_access(conn.session)
    catalog = access.service_catalog.catalog or []
    regions: set[str] = set()
    present: set[str] = set()
    for entry in catalog:
        for ep in entry.get("endpoints", []):
            region = ep.get("region_id") or ep.get("region") or ""
            regions.add(region)
            if not creds.region or region == creds.region:
                present.add(entry.get("type", ""))
    missing = [
        name
        for kind, name in SERVICES.items()
        if not present & set(CATALOG_ALIASES.get(kind, (kind,)))
    ]
    if creds.region and creds.region not in regions:
        raise SourceError(
            f"region {creds.region!r} (the Provider's secret's 'regionName') is not in the "
            f"catalog of Keystone; its regions: {', '.join(sorted(regions)) or 'none'}"
        )
    if missing:
        raise SourceError(
            f"the catalog of region {creds.region or '(any)'} has no endpoint for "
            f"{', '.join(missing)}: this user cannot migrate from it"
        )
