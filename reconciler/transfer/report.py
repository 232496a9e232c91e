"""How a copy running elsewhere (``mtv-gitops transfer`` in a Job) reports to the reconciler.

Two channels the pod has without any API access of its own (its Job runs with no service
account token):

- progress: one JSON line ``{"progress": {...}}`` on stdout every few seconds; the reconciler
  reads the last line of the pod's log;
- outcome: one JSON document in the container's termination message (``/dev/termination-log``,
  at most 4 KiB), ``{"ok": true, "result": {...}}`` or ``{"ok": false, "reason": ..., "message":
  ...}``; Kubernetes keeps it in the pod's status after the container ends.

The exit code tells Kubernetes whether another attempt can help: ``EXIT_FATAL`` (a full disk,
a digest mismatch) ends the Job at once through its pod failure policy; any other failure is
tried again up to the Job's backoffLimit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from reconciler.transfer.engine import CopyProgress, CopyResult

EXIT_FAILED = 1  # retryable: the Job makes another pod
EXIT_FATAL = 4  # retrying cannot help: the Job fails at once
TERMINATION_LIMIT = 4096  # bytes Kubernetes keeps of a termination message

DISK_FULL = "DiskFull"
DIGEST_MISMATCH = "DigestMismatch"
FAILED = "Failed"
CANCELED = "Canceled"


@dataclass(frozen=True)
class Outcome:
    """What a finished transfer said about itself."""

    ok: bool
    result: CopyResult | None = None
    reason: str = ""
    message: str = ""


def progress_line(p: CopyProgress) -> str:
    return json.dumps({"progress": asdict(p)}, sort_keys=True)


def parse_progress(text: str) -> CopyProgress | None:
    """The last progress line in ``text`` (a log tail), or None when there is none."""
    for line in reversed(text.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("progress"), dict):
            try:
                return CopyProgress(**doc["progress"])
            except TypeError:
                return None
    return None


def success_message(result: CopyResult) -> str:
    return json.dumps({"ok": True, "result": asdict(result)}, sort_keys=True)


def failure_message(reason: str, message: str) -> str:
    """A failure that fits the termination message, however long ``message`` is."""
    room = TERMINATION_LIMIT - 200
    if len(message.encode()) > room:
        message = message.encode()[:room].decode(errors="ignore") + " ..."
    return json.dumps({"ok": False, "reason": reason, "message": message}, sort_keys=True)


def parse_outcome(text: str) -> Outcome | None:
    """The outcome in a termination message; None when it is not one of ours (the container
    was killed, or the log tail Kubernetes falls back to holds something else)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "ok" not in doc:
        return None
    if doc["ok"]:
        try:
            return Outcome(True, CopyResult(**doc.get("result", {})))
        except TypeError:
            return None
    return Outcome(False, None, str(doc.get("reason", FAILED)), str(doc.get("message", "")))
