"""The reconciler's log: plain text by default, JSON lines with ``--log-format json``.

A line that concerns a plan, a Migration, a VM or a phase carries them as fields (``plan``,
``migration``, ``vm``, ``vm_id``, ``phase``, ``disk``), so ``mtv-gitops gather`` and log
aggregators filter by them instead of parsing prose.  Code adds them with ``extra=``
(:func:`fields`); the pipeline's events become log lines through :class:`EventLog`, which
subscribes to the event bus like the status writer does.

The daemon and ``reconcile`` also keep the JSON lines in ``STATE_DIR/logs/reconciler.log``
(rotated), whatever the console's format: that file is what ``gather`` reads.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.progress.events import Event, Kind

FIELDS = ("plan", "migration", "vm", "vm_id", "phase", "disk", "outcome")
LOG_DIR = "logs"
LOG_FILE = "reconciler.log"
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 5
TEXT, JSON = "text", "json"
log = logging.getLogger("mtv_gitops")
events_log = logging.getLogger("mtv_gitops.pipeline")


def fields(
    plan: str = "", migration: str = "", vm: str = "", vm_id: str = "", phase: str = ""
) -> dict[str, dict[str, str]]:
    """``extra=`` for a log call that concerns a plan, a Migration, a VM or a phase."""
    given = {"plan": plan, "migration": migration, "vm": vm, "vm_id": vm_id, "phase": phase}
    return {"extra": {k: v for k, v in given.items() if v}}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = getattr(record, key, "")
            if value:
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """As the CLI printed before (Python's last-resort handler): the message alone."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class EventLog:
    """An event subscriber that logs what a person follows: steps that start or end, VMs
    that pause or end, Migrations that end.  Copy progress stays out (the metrics and the
    status carry it)."""

    def __init__(self, logger: logging.Logger = events_log) -> None:
        self.logger = logger

    def __call__(self, event: Event) -> None:
        if event.kind is Kind.DISK:
            return
        extra = {
            "plan": event.plan,
            "migration": event.migration,
            "vm": event.vm_name,
            "vm_id": event.vm_id,
            "phase": event.phase,
            "outcome": event.outcome,
        }
        if event.kind is Kind.STEP:
            text = f"VM {event.vm_name}: {event.phase} {event.outcome}"
        elif event.kind is Kind.VM:
            text = f"VM {event.vm_name}: {event.outcome} in {event.phase}"
        elif event.kind is Kind.MIGRATION:
            extra["migration"] = extra["migration"] or event.phase
            extra["phase"] = ""
            text = f"Migration {event.phase} of plan {event.plan}: {event.outcome}"
        else:
            text = f"plan {event.plan}: {event.phase} {event.outcome}"
        if event.message:
            text += f": {event.message}"
        level = logging.WARNING if event.outcome == "Failed" else logging.INFO
        self.logger.log(level, text, extra={k: v for k, v in extra.items() if v})


class _ConsoleHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as they are when a line is written (a test
    runner swaps them), never to a stream that was closed since."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self):  # type: ignore[override]
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value) -> None:
        pass  # always the current one


def _replace(handler: logging.Handler, kind: str) -> None:
    """Install *handler* on the root logger in place of an earlier one of ours of *kind*."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_mtv_gitops", "") == kind]:
        root.removeHandler(old)
        old.close()
    handler._mtv_gitops = kind  # type: ignore[attr-defined]
    root.addHandler(handler)


def configure(fmt: str = TEXT) -> logging.Handler:
    """The console's log: *fmt* ``text`` (warnings and errors on stderr, as before) or
    ``json`` (every line from INFO on stdout, one object each)."""
    handler = _ConsoleHandler("stdout" if fmt == JSON else "stderr")
    handler.setFormatter(JsonFormatter() if fmt == JSON else TextFormatter())
    handler.setLevel(logging.INFO if fmt == JSON else logging.WARNING)
    root = logging.getLogger()
    _replace(handler, "console")
    if fmt == JSON and (root.level == logging.NOTSET or root.level > logging.INFO):
        root.setLevel(logging.INFO)
    return handler


def keep_in(state_dir: Path) -> logging.Handler:
    """Also write JSON lines to ``STATE_DIR/logs/reconciler.log`` (what ``gather`` reads)."""
    import logging.handlers  # here: a transfer Job's process logs to its console only

    folder = state_dir / LOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        folder / LOG_FILE, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP, encoding="utf-8"
    )
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    _replace(handler, "file")
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def log_files(state_dir: Path) -> list[Path]:
    """The kept log files, oldest first."""
    folder = state_dir / LOG_DIR
    rotated = sorted(folder.glob(f"{LOG_FILE}.*"), key=lambda p: -int(p.suffix[1:] or 0))
    current = folder / LOG_FILE
    return [*rotated, *([current] if current.exists() else [])]


def echoes(fmt: str, echo: Callable[[str], None], echo_err: Callable[[str], None]) -> dict:
    """The loop's ``echo``/``echo_err``: printed as now in text, log lines in JSON."""
    if fmt != JSON:
        return {"echo": echo, "echo_err": echo_err}
    out = logging.getLogger("mtv_gitops.echo")
    return {
        "echo": lambda text: out.info(text),
        "echo_err": lambda text: out.warning(text),
    }
