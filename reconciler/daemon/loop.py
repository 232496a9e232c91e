"""Run passes: until idle (``reconcile``) or forever (``daemon``), with clean shutdown."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.daemon.health import LEADER, STANDBY, Health
from reconciler.daemon.reconcile import LAST_READ_KEY, PassResult, Reconciler, Settings
from reconciler.daemon.state_dir import CHECKOUT_DIR
from reconciler.gitops import GitOpsError, RemoteHead
from reconciler.gitops.recover import remove_stale_git_locks
from reconciler.progress.lock import StateBusy, StateLock

if TYPE_CHECKING:
    from reconciler.daemon.leader import LeaderElector
    from reconciler.progress.events import Event

log = logging.getLogger(__name__)
EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE, EXIT_BUSY = 0, 1, 3, 4
MAX_PASSES = 50
RETRY_FIRST = 1.0  # seconds before the first retry after a failure; doubles up to the poll
Echo = Callable[[str], None]


def _stdout(text: str) -> None:
    print(text, flush=True)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _summary(result: PassResult) -> str:
    if result.unchanged:
        return (
            f"pass at {result.revision[:8]}: nothing changed since the last pass, which left "
            f"{result.settled} plan(s) with nothing to do; providers not asked"
        )
    ran = [d for d in result.decisions if d.migration]
    head = (
        f"pass at {result.revision[:8]}: {len(result.decisions)} plan(s), "
        f"{len(ran)} migration(s) run, {result.failed_vms} VM(s) failed, "
        f"{result.errors} manifest error(s), {len(result.not_ready)} plan(s) not ready, "
        f"{result.status_commits} status commit(s)"
    )
    lines = [head, *(f"  {p}" for p in result.problems)]
    if result.wake_at is not None and not result.work_left:
        at = datetime.fromtimestamp(result.wake_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(
            f"  warm migration waiting: next precopy round or cutover at {at}; "
            "`mtv-gitops daemon REPO` runs it then (or run `reconcile` again)"
        )
    return "\n".join(lines)


def run_until_idle(
    settings: Settings,
    once: bool = False,
    echo: Echo = _stdout,
    echo_err: Echo = _stderr,
    *,
    wait: bool = True,
) -> int:
    """Passes until no migration has work left; exit code for the CLI.

    The state folder is held for the whole run: another reconciler on it makes this one wait
    (``wait``) or exit with EXIT_BUSY."""
    lock = StateLock(settings.state_dir, wait=wait, on_wait=echo_err)
    try:
        lock.acquire()
    except StateBusy as exc:
        echo_err(f"error {exc}")
        return EXIT_BUSY
    try:
        return _passes(settings, once, echo, echo_err)
    finally:
        lock.release()


def _passes(settings: Settings, once: bool, echo: Echo, echo_err: Echo) -> int:
    claim_state(settings.state_dir)
    rec = Reconciler(settings)
    try:
        with _reporting(settings):
            for _ in range(1 if once else MAX_PASSES):
                result = rec.run_pass()
                echo(_summary(result))
                if not result.work_left:
                    break
    except GitOpsError as exc:
        echo_err(f"git: {exc}")
        return EXIT_UNREACHABLE
    finally:
        rec.close()
    return EXIT_PROBLEMS if result.errors or result.failed_vms or result.not_ready else EXIT_OK


def claim_state(state_dir: Path) -> None:
    """What a process that just took the state folder's lock may clean up: nothing of a
    previous holder runs any more, so git's lock files it left are stale."""
    remove_stale_git_locks(state_dir / CHECKOUT_DIR)


class _reporting:
    """Start and stop the reporter's progress display when it has one."""

    def __init__(self, settings: Settings) -> None:
        self.reporter = settings.reporter

    def __enter__(self) -> None:
        if hasattr(self.reporter, "__enter__"):
            self.reporter.__enter__()

    def __exit__(self, *exc: object) -> None:
        if hasattr(self.reporter, "__exit__"):
            self.reporter.__exit__(*exc)


def run_daemon(
    settings: Settings,
    interval: float,
    echo: Echo = _stdout,
    echo_err: Echo = _stderr,
    *,
    elector: LeaderElector | None = None,
    health: Health | None = None,
    wait: bool = True,
) -> int:
    """Poll the remote; run a pass when non-status commits arrived or work is unfinished.

    With an *elector*, passes run only while this process holds the Lease: it stands by
    (touching neither git nor the state dir) until it leads, halts the pass at once when the
    Lease is lost, then stands by again.  On SIGTERM it hands the Lease over on its way out.
    *health* receives what the probes and metrics report. The state folder is locked while
    this process leads (all the time without an elector); another holder makes it wait
    (``wait``) or return EXIT_BUSY.
    """
    health = health or Health()
    health.watch(threading.current_thread())
    settings = replace(settings, reporter=_HealthReporter(settings.reporter, health))
    stop = threading.Event()
    wake = threading.Event()
    running: list[Reconciler] = []  # the reconciler of the current term, for halt()

    def halt() -> None:
        wake.set()
        for rec in list(running):
            rec.stop()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        halt()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    observer = _watch(Path(settings.source), wake)
    try:
        with _reporting(settings):
            while not stop.is_set():
                lost = threading.Event()
                if elector is not None:
                    if not _campaign(elector, stop, health, echo):
                        break

                    def on_lost(reason: str, lost: threading.Event = lost) -> None:
                        lost.set()
                        echo_err(f"lost the lease: {reason}; stopping the pass")
                        halt()

                    elector.start_renewing(on_lost)
                    health.role(LEADER)
                    echo(f"leading as {elector.identity}")
                rec: Reconciler | None = None
                lock = StateLock(settings.state_dir, wait=wait, on_wait=echo_err, stop=stop)
                try:
                    if not lock.acquire():
                        break  # stopped while waiting
                    claim_state(settings.state_dir)
                    rec = Reconciler(settings)
                    running.append(rec)
                    health.store_from(rec.store)
                    health.pushes_from(rec.checkout.push_counts)
                    health.secrets_from(rec.known_secrets)
                    _term(rec, interval, stop, lost, wake, health, echo, echo_err)
                finally:
                    health.store_from(None)
                    health.pushes_from(None)
                    health.secrets_from(None)
                    if rec is not None:
                        running.remove(rec)
                        rec.close()
                    lock.release()
                    if elector is not None and lost.is_set():
                        elector.abandon()
                    elif elector is not None:
                        elector.release()  # the next replica need not wait for it to expire
                if elector is None:
                    break
    except StateBusy as exc:
        echo_err(f"error {exc}")
        return EXIT_BUSY
    finally:
        if observer is not None:
            observer.stop()
    return EXIT_OK


def _campaign(elector: LeaderElector, stop: threading.Event, health: Health, echo: Echo) -> bool:
    """Stand by until this process leads (True) or is stopped (False)."""
    health.role(STANDBY, elector.holder)
    where = f"{elector.settings.namespace}/{elector.settings.name}"
    echo(f"standing by: {elector.identity} campaigns for lease {where}")
    return elector.acquire(stop, tick=lambda: health.role(STANDBY, elector.holder))


def retry_limits(interval: float) -> tuple[float, float]:
    """The first and the longest wait after a failure.

    The wait doubles from the first up to the poll interval (at least the first): a remote
    that comes back after a long outage is noticed within about one poll, like an idle
    daemon would notice a push; a push from a watched clone wakes it at once.  Tests shorten
    them with ``MTV_GITOPS_GIT_RETRY_FIRST`` / ``MTV_GITOPS_GIT_RETRY_MAX`` (seconds).
    """
    first = _env_seconds("MTV_GITOPS_GIT_RETRY_FIRST", min(RETRY_FIRST, interval))
    longest = _env_seconds("MTV_GITOPS_GIT_RETRY_MAX", max(interval, first))
    return first, max(first, longest)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return max(0.01, float(raw)) if raw else default
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", name, raw)
        return default


class _Backoff:
    """How long to wait after the n-th failure in a row: doubling, capped."""

    def __init__(self, first: float, longest: float) -> None:
        self.first, self.longest = first, longest
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.first * 2 ** (self.failures - 1), self.longest)

    def succeeded(self) -> None:
        self.failures = 0


def _term(
    rec: Reconciler,
    interval: float,
    stop: threading.Event,
    lost: threading.Event,
    wake: threading.Event,
    health: Health,
    echo: Echo,
    echo_err: Echo,
) -> None:
    """Reconcile until stopped or the Lease is lost: one leadership term (or the whole run).

    A pass runs when the user's branch moved outside ``status/``, when work is left (a start
    resumes unfinished work), when a warm VM's round is due, and after a pass that failed
    (its final status may be unwritten).  Status commits waiting in the checkout (a push that
    failed) are pushed as soon as the remote answers.  After a failure the loop waits for
    real, doubling up to about the poll interval; a push to the watched clone wakes it.
    """
    work_left, pass_owed = True, False
    backoff = _Backoff(*retry_limits(interval))
    wake_at: float | None = None
    echo(f"watching {rec.checkout.remote_display} every {interval:.0f}s")
    while not (stop.is_set() or lost.is_set()):
        health.beat()
        in_pass = False
        pause: float | None = None  # after a failure: how long to wait before trying again
        try:
            head = RemoteHead.poll(rec.checkout.remote, rec.checkout.branch)
            health.synced()
            last = rec.store.get(LAST_READ_KEY) or None
            if head != last and last is not None and not (work_left or pass_owed):
                head = rec.checkout.sync()  # fetch what moved, to look at it
            due = wake_at is not None and time.time() >= wake_at  # a warm VM's next round
            if (
                work_left
                or pass_owed
                or due
                or last is None
                or (head != last and rec.checkout.needs_pass(last, head))
            ):
                if lost.is_set():
                    break
                in_pass = pass_owed = True  # until it ends well
                began = time.monotonic()
                result = rec.run_pass()
                pass_owed = False
                health.pass_done(seconds=time.monotonic() - began)
                health.synced()
                echo(_summary(result))
                work_left, wake_at = result.work_left, result.wake_at
            else:
                if head != last:
                    rec.store.set(LAST_READ_KEY, head)
                if rec.checkout.status_pending():
                    rec.checkout.sync()  # keeps the waiting status, on the remote's head
                    if rec.checkout.flush_status():
                        echo("pushed status that was waiting for the remote")
            backoff.succeeded()
        except GitOpsError as exc:
            if in_pass:
                health.pass_done(failed=True)
            health.synced(str(exc))
            pause = backoff.failed()
            echo_err(f"git: {exc}; retrying in {_seconds(pause)}")
        except Exception as exc:  # noqa: BLE001 - a bug in one pass must not end the daemon
            if in_pass:
                health.pass_done(failed=True)
            log.exception("reconcile pass failed")
            pause = backoff.failed()
            echo_err(f"pass failed: {type(exc).__name__}: {exc}; retrying in {_seconds(pause)}")
            work_left = pass_owed = False  # a bug: the next commit or poll tries again
        if pause is None:  # no failure: straight on while work is left, else poll
            pause = 0.0 if work_left else interval
            if wake_at is not None:  # back by the earliest next precopy round
                pause = max(0.0, min(pause, wake_at - time.time()))
        if pause > 0 and not (stop.is_set() or lost.is_set()):
            wake.wait(pause)
        wake.clear()


def _seconds(value: float) -> str:
    """A wait as the log says it: whole seconds, tenths below ten."""
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


class _HealthReporter:
    """Passes the pipeline's events on, and to the health probes and metrics."""

    def __init__(self, inner: Callable[[Event], None] | None, health: Health) -> None:
        self.inner = inner
        self.health = health

    def __enter__(self) -> _HealthReporter:
        if hasattr(self.inner, "__enter__"):
            self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self.inner, "__exit__"):
            self.inner.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        self.health(event)
        if self.inner is not None:
            self.inner(event)


def _watch(path: Path, wake: threading.Event):
    """A watchdog observer on a local clone: a push or commit from it wakes the loop."""
    if not path.is_dir():
        return None
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            path = str(getattr(event, "dest_path", "") or event.src_path)
            if "/mtv-gitops/" in path or path.endswith(".lock"):
                return  # our own state, or git half-way through updating a ref
            wake.set()

    observer = Observer()
    git_dir = path / ".git" if (path / ".git").is_dir() else path
    refs = git_dir / "refs"
    observer.schedule(Handler(), str(refs if refs.is_dir() else path), recursive=True)
    observer.daemon = True
    observer.start()
    time.sleep(0)  # let the observer thread start before the first poll
    return observer
