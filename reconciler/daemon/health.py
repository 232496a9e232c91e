"""Probes and metrics for the daemon: ``/healthz``, ``/readyz`` and ``/metrics`` over HTTP.

The daemon loop writes into a :class:`Health` as it goes; a small stdlib HTTP server in a
thread answers from it.  Liveness means the loop thread runs and has shown a sign of life
(a poll, a pass, a copied chunk, a step) within ``stuck_after`` seconds; readiness means the
last git sync worked, and a standby replica (another one leads) is ready and says so.
``/metrics`` is the Prometheus text format from prometheus_client (see :mod:`.metrics`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reconciler.daemon.metrics import LiveMetrics, StoreCollector, exposition, registry
from reconciler.daemon.page import render
from reconciler.progress.events import Event, Kind
from reconciler.progress.store import ProgressStore

log = logging.getLogger(__name__)

STUCK_AFTER = 1800.0  # a pass may wait this long for a slow vCenter or a VM's shutdown
CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"

SINGLE, LEADER, STANDBY = "single", "leader", "standby"


class Health:
    """What the loop reports and the probes read; every method is thread-safe."""

    def __init__(
        self,
        stuck_after: float = STUCK_AFTER,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.stuck_after = stuck_after
        self.clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._beat = clock()
        self._synced: bool | None = None  # None: no sync tried yet
        self._sync_error = ""
        self._role = SINGLE
        self._leader = ""
        self._store: ProgressStore | None = None
        self._secrets: Callable[[], set[str]] | None = None
        self._disk_done: dict[tuple[str, str, str], int] = {}  # (plan, VM, disk) -> this copy's
        self.live = LiveMetrics(wall)
        self.collector = StoreCollector(self.store, self.live, wall)
        self.registry = registry(self.collector)

    # -- written by the daemon --------------------------------------------------------------

    def watch(self, thread: threading.Thread) -> None:
        """The loop's thread: liveness fails once it has ended."""
        with self._lock:
            self._thread = thread
            self._beat = self.clock()

    def beat(self) -> None:
        """A sign that the loop is not stuck."""
        with self._lock:
            self._beat = self.clock()

    def synced(self, error: str = "") -> None:
        """The outcome of the latest git sync or poll: *error* empty when it worked.  The
        message must already be safe to show (``GitOpsError`` messages are)."""
        with self._lock:
            self._beat = self.clock()
            self._synced = not error
            self._sync_error = error

    def pass_done(self, failed: bool = False, seconds: float | None = None) -> None:
        """A pass ended (``failed``: in an error) after *seconds*."""
        with self._lock:
            self._beat = self.clock()
        self.live.pass_done(failed, seconds)

    def copied(self, nbytes: int) -> None:
        if nbytes > 0:
            with self._lock:
                self._beat = self.clock()
            with self.live._lock:
                self.live.copied += nbytes

    def __call__(self, event: Event) -> None:
        """An event subscriber: every pipeline event is a sign of life; copy progress counts
        copied bytes and the disk's rate, a VM's end counts its result."""
        if event.kind is Kind.DISK and event.progress is not None:
            p = event.progress
            done = max(0, p.bytes_done - p.resumed_bytes)  # copied by this run
            key = (event.plan, event.vm_id, event.disk)
            with self._lock:
                before = self._disk_done.get(key, 0)
                self._disk_done[key] = done
            with self.live._lock:
                key = (event.plan, event.vm_name, event.disk)
                self.live.disks[key] = (p.bytes_done, p.rate, p.total, p.eta)
            self.copied(done - before if done >= before else done)  # a new copy restarts
        elif event.kind is Kind.VM and event.outcome in ("Succeeded", "Failed", "Canceled"):
            with self._lock:
                self._disk_done = {k: v for k, v in self._disk_done.items() if k[1] != event.vm_id}
            with self.live._lock:
                results = self.live.results
                results[event.outcome] = results.get(event.outcome, 0) + 1
                self.live.disks = {
                    k: v for k, v in self.live.disks.items() if k[:2] != (event.plan, event.vm_name)
                }
        self.beat()

    def role(self, role: str, leader: str = "") -> None:
        """``single`` (no election), ``leader``, or ``standby`` while *leader* holds the lease."""
        with self._lock:
            self._role, self._leader = role, leader
            self._beat = self.clock()
            if role == STANDBY:
                self._synced, self._sync_error = None, ""  # a new leadership syncs anew
        with self.live._lock:
            self.live.leading = role != STANDBY

    def store_from(self, store: ProgressStore | None) -> None:
        """The progress store ``/metrics`` reads (None while this process holds none)."""
        with self._lock:
            self._store = store

    def pushes_from(self, source: Callable[[], dict[str, int]] | None) -> None:
        """Where ``/metrics`` reads the status pushes' retries, conflicts and failures."""
        with self.live._lock:
            self.live.pushes = source

    def secrets_from(self, source: Callable[[], set[str]] | None) -> None:
        """The secret values the status page must never show (the reconciler's)."""
        with self._lock:
            self._secrets = source

    def page(self) -> str:
        """The read-only status page (``/``), from the progress store and copies in flight."""
        with self._lock:
            store, role, source = self._store, self._role, self._secrets
        with self.live._lock:
            disks = dict(self.live.disks)
        try:
            secrets = source() if source is not None else set()
            return render(store, disks, role, secrets)
        except Exception as exc:  # noqa: BLE001 - a store closing under a request
            log.debug("status page: %s", exc)
            return render(None, {}, role)

    def store(self) -> ProgressStore | None:
        with self._lock:
            return self._store

    # -- read by the probes -----------------------------------------------------------------

    def liveness(self) -> tuple[bool, str]:
        with self._lock:
            thread, quiet = self._thread, self.clock() - self._beat
        if thread is not None and not thread.is_alive():
            return False, "the daemon loop has ended"
        if quiet > self.stuck_after:
            return False, f"no sign of life from the daemon loop for {quiet:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            role, leader, synced, error = self._role, self._leader, self._synced, self._sync_error
        if role == STANDBY:
            return True, f"ok: standby, {leader or 'another replica'} leads"
        if synced is None:
            return False, "not ready: no git sync yet"
        if not synced:
            return False, f"not ready: the last git sync failed: {error}"
        return True, f"ok: {role}, the last git sync worked"

    def metrics(self) -> str:
        """The Prometheus text exposition (format 0.0.4), read from the progress store and
        this process's own counters; never a provider or git."""
        return exposition(self.registry).decode()


class HealthServer:
    """``/`` (the status page), ``/healthz``, ``/readyz`` and ``/metrics`` on *host*:*port*
    in a daemon thread (port 0: any free port, see :attr:`port`)."""

    def __init__(self, health: Health, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.health = health
        handler = _handler(health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="health-http", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._answer(*health.liveness())
            elif path == "/readyz":
                self._answer(*health.readiness())
            elif path == "/metrics":
                self._send(200, health.metrics(), CONTENT_TYPE_METRICS)
            elif path in ("/", "/index.html"):
                self._send(200, health.page(), "text/html; charset=utf-8")
            else:
                self._send(404, "not found: try /, /healthz, /readyz or /metrics\n")

        def _answer(self, ok: bool, text: str) -> None:
            self._send(200 if ok else 503, text + "\n")

        def _send(self, code: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("health: " + format, *args)  # probes every few seconds: not for stderr

    return Handler
