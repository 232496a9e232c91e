"""One active replica: leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does.

A candidate takes the Lease when nobody holds it, or when its holder has not changed it for
the holder's ``leaseDurationSeconds``, measured on the candidate's own clock from the moment it
last saw the Lease change (so clocks that disagree between nodes do not matter).  The holder
renews every ``retry_period`` in a background thread.  When it has not managed to renew for
``renew_deadline`` (shorter than the lease duration, so it stops before a candidate may start),
or finds another holder, it has lost: ``on_lost`` is called and the caller stops reconciling.

Every write carries the ``resourceVersion`` it was based on, so the API server refuses the
second of two candidates that raced (409) rather than letting both win.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
JITTER = 1.2  # client-go's JitterFactor: candidates spread their retries
MERGE_PATCH = "application/merge-patch+json"


def default_identity() -> str:
    """This process among the replicas: the pod name and a random part (a restarted container
    is a new candidate, as with client-go's ``hostname_uuid``)."""
    host = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{host}_{uuid.uuid4().hex[:8]}"


def default_namespace() -> str:
    """The namespace the reconciler runs in: ``$POD_NAMESPACE``, the service account's, else
    ``default`` (outside a cluster)."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return SA_NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


@dataclass(frozen=True)
class LeaseSettings:
    """The Lease and client-go's three timings (their defaults: 15 s, 10 s, 2 s)."""

    name: str = "mtv-gitops"
    namespace: str = "default"
    identity: str = field(default_factory=default_identity)
    lease_duration: int = 15  # seconds; the Lease field is a whole number
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > JITTER * self.retry_period > 0:
            raise ValueError(
                "leader election needs lease duration > renew deadline > "
                f"{JITTER} x retry period > 0 (got {self.lease_duration}, "
                f"{self.renew_deadline}, {self.retry_period})"
            )


@dataclass(frozen=True)
class _Record:
    """The Lease fields that tell whether its holder is alive: any change counts as a renewal."""

    holder: str
    duration: int
    acquired: str
    renewed: str
    transitions: int


def lease_api(kubeconfig: str | None = None) -> client.CoordinationV1Api:
    """A ``CoordinationV1Api`` for the cluster we run in (in a pod), else the kubeconfig's.

    It has its own client configuration, so it changes nothing for other users of the
    kubernetes client in this process.
    """
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(
            config_file=kubeconfig, client_configuration=cfg, persist_config=False
        )
    return client.CoordinationV1Api(client.ApiClient(cfg))


class LeaderElector:
    """Campaigns for one Lease and, once it holds it, keeps it until stopped or lost."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        settings: LeaseSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock
        self._leading = threading.Event()
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._version: str | None = None  # resourceVersion of the Lease last read or written
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        # an answer must come well within the renew deadline, or renewing cannot stop in time
        self._timeout = max(0.5, settings.renew_deadline / 2)

    @property
    def identity(self) -> str:
        return self.settings.identity

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def holder(self) -> str:
        """Who held the Lease when we last looked ("" when free or not read yet)."""
        return self._observed.holder if self._observed else ""

    # -- campaigning ------------------------------------------------------------------------

    def acquire(self, stop: threading.Event, tick: Callable[[], None] = lambda: None) -> bool:
        """Block until this process leads (True) or *stop* is set (False); *tick* runs after
        every attempt (the daemon shows it is alive while it stands by)."""
        retry = self.settings.retry_period
        while not stop.is_set():
            try:
                if self._try_acquire_or_renew():
                    self._leading.set()
                    log.info("leading: lease %s held by %s", self._where(), self.identity)
                    return True
            except Exception as exc:  # noqa: BLE001 - an unreachable API server is retried
                log.warning("lease %s: %s", self._where(), _short(exc))
            tick()
            stop.wait(retry * random.uniform(1.0, JITTER))
        return False

    def start_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renew in a background thread; ``on_lost(reason)`` is called (from that thread) once,
        if the Lease is lost.  Call after :meth:`acquire` returned True."""
        if not self.is_leader:
            raise RuntimeError("start_renewing() before acquire() succeeded")
        self._stop_renewing.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(on_lost,), name="lease-renewer", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self, on_lost: Callable[[str], None]) -> None:
        last_renewed = self.clock()
        while not self._stop_renewing.wait(self.settings.retry_period):
            reason = ""
            try:
                if self._try_acquire_or_renew():
                    last_renewed = self.clock()
                    continue
                if self.holder == self.identity:
                    # our write lost a race (409) though we still held it: read again
                    if self.clock() - last_renewed < self.settings.renew_deadline:
                        continue
                    reason = f"not renewed for {self.settings.renew_deadline:g}s"
                else:
                    reason = f"the lease is held by {self.holder or 'nobody'}"
            except Exception as exc:  # noqa: BLE001 - judged against the renew deadline below
                log.warning("renewing lease %s: %s", self._where(), _short(exc))
                if self.clock() - last_renewed < self.settings.renew_deadline:
                    continue
                reason = f"not renewed for {self.settings.renew_deadline:g}s ({_short(exc)})"
            if self._stop_renewing.is_set():
                return  # stopping anyway: release() or abandon() owns the outcome
            self._leading.clear()
            log.warning("lost lease %s: %s", self._where(), reason)
            on_lost(reason)
            return

    def release(self) -> None:
        """Stop renewing and, if we still hold the Lease, hand it over now (a graceful exit:
        the next candidate need not wait for the lease to expire)."""
        self.abandon()
        try:
            lease = self.api.read_namespaced_lease(
                self.settings.name, self.settings.namespace, _request_timeout=self._timeout
            )
            if (lease.spec.holder_identity or "") != self.identity:
                return
            now = _micro_time()
            spec = {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": now}
            self._patch(spec, lease.metadata.resource_version)
            log.info("released lease %s", self._where())
        except Exception as exc:  # noqa: BLE001 - the lease then expires on its own
            log.warning("releasing lease %s: %s", self._where(), _short(exc))

    def abandon(self) -> None:
        """Stop renewing and leading without touching the Lease (it expires on its own)."""
        self._stop_renewing.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        self._renewer = None
        self._leading.clear()

    # -- one attempt, as client-go's tryAcquireOrRenew ---------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        s = self.settings
        now = _micro_time()
        try:
            lease = self.api.read_namespaced_lease(
                s.name, s.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        spec = lease.spec
        record = _Record(
            spec.holder_identity or "",
            spec.lease_duration_seconds or s.lease_duration,
            _text(spec.acquire_time),
            _text(spec.renew_time),
            spec.lease_transitions or 0,
        )
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        self._version = lease.metadata.resource_version
        if record.holder == self.identity:
            acquired, transitions = record.acquired or now, record.transitions
        elif self.is_leader:
            return False  # someone else took it: lost, whatever its timings say
        elif record.holder and self.clock() < self._observed_at + record.duration:
            return False  # held, and renewed recently enough
        else:
            acquired, transitions = now, record.transitions + 1
        spec_patch = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": s.lease_duration,
            "acquireTime": acquired,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        try:
            written = self._patch(spec_patch, self._version)
        except ApiException as exc:
            if exc.status == 409:
                return False  # another candidate wrote first
            raise
        self._observe_written(written, spec_patch)
        return True

    def _create(self, now: str) -> bool:
        s = self.settings
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": s.lease_duration,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": s.name,
                "namespace": s.namespace,
                "labels": {"app.kubernetes.io/name": "mtv-gitops"},
            },
            "spec": spec,
        }
        try:
            written = self.api.create_namespaced_lease(
                s.namespace, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 409:
                return False  # another candidate created it first
            raise
        self._observe_written(written, spec)
        return True

    def _patch(self, spec: dict[str, Any], version: str | None) -> Any:
        body: dict[str, Any] = {"spec": spec}
        if version:
            body["metadata"] = {"resourceVersion": version}  # the API server's optimistic lock
        return self.api.patch_namespaced_lease(
            self.settings.name,
            self.settings.namespace,
            body,
            _content_type=MERGE_PATCH,
            _request_timeout=self._timeout,
        )

    def _observe_written(self, written: Any, spec: dict[str, Any]) -> None:
        self._observed = _Record(
            spec["holderIdentity"],
            spec["leaseDurationSeconds"],
            spec["acquireTime"],
            spec["renewTime"],
            spec["leaseTransitions"],
        )
        self._observed_at = self.clock()
        self._version = getattr(getattr(written, "metadata", None), "resource_version", None)

    def _where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"


def _micro_time() -> str:
    """Now as a Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str:
    """A Lease time as the client returns it (datetime or str), in one comparable form."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _short(exc: BaseException) -> str:
    """One line for a log: the API's status and reason, not its whole response body."""
    status = getattr(exc, "status", None)
    if status:
        return f"{status} {getattr(exc, 'reason', '') or type(exc).__name__}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
