"""The kubernetes API as the kubevirt target uses it: JSON requests through the official
client, one code path for core, batch and kubevirt.io resources (the manifests are dicts
already), failures turned into TargetErrors that say which cluster and what to do.

Label selectors are sent and also checked here, so a server that ignores them (a test
emulator) cannot widen a delete.
"""

from __future__ import annotations

import json
import ssl
import tempfile
import time
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from reconciler.targets.base import TargetError

VM_PATH = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines"
PVC_PATH = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
JOB_PATH = "/apis/batch/v1/namespaces/{ns}/jobs"
SECRET_PATH = "/api/v1/namespaces/{ns}/secrets"
CONFIGMAP_PATH = "/api/v1/namespaces/{ns}/configmaps"
POD_PATH = "/api/v1/namespaces/{ns}/pods"
NS_PATH = "/api/v1/namespaces"
SC_PATH = "/apis/storage.k8s.io/v1/storageclasses"
DELETE_WAIT_SECONDS = 120.0
# connections refused or reset are retried; a certificate that is not trusted is not (it will
# not become trusted in a second, and each attempt is a TLS handshake): urllib3 counts TLS
# failures as "other" errors
_RETRIES = urllib3.Retry(total=3, other=0, redirect=0)


def client_from_url(
    url: str, token: str, cacert: str = "", insecure: bool = False
) -> k8s.ApiClient:
    """A client of the API server at ``url`` with a service account ``token``; ``cacert``
    (PEM) is the CA to trust, ``insecure`` skips verifying the server."""
    cfg = k8s.Configuration()
    cfg.host = url.rstrip("/")
    cfg.api_key = {"BearerToken": token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    if cacert:
        with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
            f.write(cacert)
        cfg.ssl_ca_cert = f.name
    if insecure:
        cfg.verify_ssl = False
    cfg.retries = _RETRIES
    return k8s.ApiClient(cfg)


def in_cluster_client() -> k8s.ApiClient:
    """A client of the cluster this process runs in, with its pod's service account."""
    from kubernetes.config import ConfigException, load_incluster_config

    cfg = k8s.Configuration()
    try:
        load_incluster_config(client_configuration=cfg)
    except ConfigException as exc:
        raise TargetError(f"cannot use the cluster this pod runs in: {exc}") from None
    cfg.retries = _RETRIES
    return k8s.ApiClient(cfg)


def _matches(obj: dict[str, Any], labels: dict[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def terminating(obj: dict[str, Any] | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


class KubeApi:
    """JSON requests through the kubernetes client; failures become TargetErrors that say
    which cluster and what to do."""

    def __init__(self, api_client: k8s.ApiClient, where: str, who: str = "") -> None:
        self.api_client = api_client
        self.where = where
        self.who = who  # "destination Provider ns/name", for messages that say what to edit

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        headers = {"Accept": "*/*" if raw else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*request, _request_timeout=(10, 60))
            response.read()
        except urllib3.exceptions.HTTPError as exc:
            if _untrusted(exc):
                raise self._untrusted_error() from None
            raise TargetError(f"cannot reach the cluster at {self.where}: {exc}") from None
        except ApiException as exc:  # TLS failures arrive here with status 0
            if exc.status == 0 and _untrusted(exc):
                raise self._untrusted_error() from None
            raise self._error(method, path, exc.status, exc.reason or "") from None
        if not 200 <= response.status < 300:
            raise _HttpError(
                response.status, self._error(method, path, response.status, _why(response.data))
            )
        if raw:
            return response.data.decode(errors="replace")
        return json.loads(response.data) if response.data else None

    def _untrusted_error(self) -> TargetError:
        whose = f" ({self.who})" if self.who else ""
        return TargetError(
            f"the cluster at {self.where}{whose} presents a certificate that is not trusted: "
            "put the cluster's CA certificate (PEM) in the 'cacert' key of the Provider's "
            'secret, or set insecureSkipVerify: "true" there to skip the check (tests only)'
        )

    def _error(self, method: str, path: str, status: int, why: str) -> TargetError:
        if status == 401:
            return TargetError(
                f"the cluster at {self.where} refused the token (401 Unauthorized): put a valid "
                "service account token in the destination Provider's secret"
            )
        if status == 403:
            return TargetError(
                f"the cluster at {self.where} forbids {method} {path} (403): grant the "
                f"reconciler's service account that permission; {why}"
            )
        if status == 0:
            return TargetError(f"cannot reach the cluster at {self.where}: {why}")
        return TargetError(f"{method} {path} on {self.where} failed ({status}): {why}")

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise exc.error from None

    def list(self, path: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", _selector(labels))] if labels else None
        try:
            items = (self._call("GET", path, query=query) or {}).get("items") or []
        except _HttpError as exc:
            if exc.status == 404:
                return []
            raise exc.error from None
        return [i for i in items if not labels or _matches(i, labels)]

    def create(self, path: str, body: dict[str, Any]) -> bool:
        """True when created, False when it existed already."""
        try:
            self._call("POST", path, body)
        except _HttpError as exc:
            if exc.status == 409:
                return False
            raise exc.error from None
        return True

    def patch(self, path: str, body: dict[str, Any]) -> None:
        try:
            self._call("PATCH", path, body, content_type="application/merge-patch+json")
        except _HttpError as exc:
            raise exc.error from None

    def delete(self, path: str) -> bool:
        """True when something was deleted; dependants (a Job's pods) go in the background."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", path, body)
        except _HttpError as exc:
            if exc.status == 404:
                return False
            raise exc.error from None
        return True

    def text(self, path: str, query: list[tuple[str, str]]) -> str | None:
        try:
            return self._call("GET", path, query=query, raw=True)
        except (_HttpError, TargetError):
            return None


class _HttpError(Exception):
    def __init__(self, status: int, error: TargetError) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


def _untrusted(exc: BaseException) -> bool:
    """Whether a failed request failed on the server's certificate (urllib3 wraps the
    ``ssl`` error in a retry error, or only quotes it)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return True
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__]
        todo += [a for a in e.args if isinstance(a, BaseException)]
    return False


def _why(data: bytes | None) -> str:
    try:
        doc = json.loads(data or b"")
    except ValueError:
        return (data or b"").decode(errors="replace")[:300]
    return str(doc.get("message") or doc.get("reason") or "") if isinstance(doc, dict) else ""


def ensure_created(api: KubeApi, collection: str, name: str, manifest: dict[str, Any]) -> None:
    """Create ``name`` in ``collection`` unless it exists; one still being deleted (pods may
    hold a PVC) is waited for first, then made anew."""
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while True:
        obj = api.get(f"{collection}/{name}")
        if obj is None:
            if api.create(collection, manifest):
                return
            continue  # made meanwhile: look again
        if not terminating(obj):
            return
        if time.monotonic() > deadline:
            where = f"{manifest['metadata'].get('namespace', '')}/{name}".lstrip("/")
            raise TargetError(
                f"{manifest.get('kind', 'object')} {where} is still being deleted after "
                f"{DELETE_WAIT_SECONDS:.0f}s; a pod may still use it: delete that pod"
            )
        time.sleep(1.0)
