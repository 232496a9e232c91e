"""Run passes: until idle (``reconcile``) or forever (``daemon``), with clean shutdown."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.daemon.reconcile import LAST_READ_KEY, PassResult, Reconciler, Settings
from reconciler.gitops import GitOpsError, RemoteHead

log = logging.getLogger(__name__)
EXIT_OK, EXIT_PROBLEMS, EXIT_UNREACHABLE = 0, 1, 3
MAX_PASSES = 50
Echo = Callable[[str], None]


def _stdout(text: str) -> None:
    print(text, flush=True)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _summary(result: PassResult) -> str:
    ran = [d for d in result.decisions if d.migration]
    head = (
        f"pass at {result.revision[:8]}: {len(result.decisions)} plan(s), "
        f"{len(ran)} migration(s) run, {result.failed_vms} VM(s) failed, "
        f"{result.errors} manifest error(s), {len(result.not_ready)} plan(s) not ready, "
        f"{result.status_commits} status commit(s)"
    )
    return "\n".join([head, *(f"  {p}" for p in result.problems)])


def run_until_idle(
    settings: Settings, once: bool = False, echo: Echo = _stdout, echo_err: Echo = _stderr
) -> int:
    """Passes until no migration has work left; exit code for the CLI."""
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
    settings: Settings, interval: float, echo: Echo = _stdout, echo_err: Echo = _stderr
) -> int:
    """Poll the remote; run a pass when non-status commits arrived or work is unfinished."""
    rec = Reconciler(settings)
    stop = threading.Event()
    wake = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        wake.set()
        rec.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    observer = _watch(Path(settings.source), wake)
    work_left, backoff = True, interval
    echo(f"watching {rec.checkout.remote_display} every {interval:.0f}s")
    try:
        with _reporting(settings):
            while not stop.is_set():
                try:
                    head = RemoteHead.poll(rec.checkout.remote, rec.checkout.branch)
                    last = rec.store.get(LAST_READ_KEY) or None
                    if head != last and last is not None and not work_left:
                        head = rec.checkout.sync()  # fetch what moved, to look at it
                    if (
                        work_left
                        or last is None
                        or (head != last and rec.checkout.needs_pass(last, head))
                    ):
                        result = rec.run_pass()
                        echo(_summary(result))
                        work_left = result.work_left
                    elif head != last:
                        rec.store.set(LAST_READ_KEY, head)
                    backoff = interval
                except GitOpsError as exc:
                    echo_err(f"git: {exc}; retrying in {backoff:.0f}s")
                    backoff = min(backoff * 2, 600)
                except Exception as exc:  # noqa: BLE001 - a bug in one pass must not end the daemon
                    log.exception("reconcile pass failed")
                    echo_err(
                        f"pass failed: {type(exc).__name__}: {exc}; retrying in {backoff:.0f}s"
                    )
                    work_left = False
                    backoff = min(backoff * 2, 600)
                wake.wait(0 if work_left and not stop.is_set() else backoff)
                wake.clear()
    finally:
        if observer is not None:
            observer.stop()
        rec.close()
    return EXIT_OK


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
