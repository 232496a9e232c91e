"""The records a hook run is made of: the Hook as resolved from the repo, one run, its outcome."""

from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass, field

DEFAULT_IMAGE = "quay.io/konveyor/hook-runner"
LOG_LINES = 10  # the last lines of a hook's log kept in the VM's pipeline step


class HookInputError(ValueError):
    """A Hook whose inputs cannot be used (a playbook that is not base64)."""


@dataclass(frozen=True)
class Hook:
    """A Hook manifest, its playbook decoded (``""``: the image runs as it is)."""

    namespace: str
    name: str
    image: str = DEFAULT_IMAGE
    playbook: str = ""
    service_account: str = ""
    deadline: int = 0  # seconds; 0: none

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def runner_image(self) -> bool:
        """True for Forklift's hook-runner (any tag): the playbook runs with ansible."""
        repo = self.image.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        return last.split(":", 1)[0] == "hook-runner"


def decode_playbook(encoded: str | None) -> str:
    """The Hook's ``spec.playbook`` (base64, as in MTV; whitespace and line breaks allowed)."""
    if not encoded:
        return ""
    try:
        return base64.b64decode("".join(encoded.split()), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise HookInputError(f"spec.playbook is not a base64-encoded playbook: {exc}") from None


@dataclass(frozen=True)
class HookRun:
    """One run of a hook for one VM at one step of one Migration.

    ``labels`` find what a run made on a cluster again (a killed pass follows its Job);
    ``halt`` set: stop now (shutdown), the next pass runs the hook again."""

    hook: Hook
    step: str  # PreHook | PostHook
    plan: str  # the Plan's name
    plan_namespace: str
    migration: str
    vm_id: str
    vm_name: str
    namespace: str  # the plan's target namespace: where a Job runs
    plan_yml: str
    workload_yml: str
    service_account: str = ""  # the Hook's, else the Plan's
    labels: dict[str, str] = field(default_factory=dict)
    halt: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class HookOutcome:
    """How a run ended: ``succeeded``, or ``message`` says why not; ``how`` says what ran
    (``ansible-playbook``, ``podman run IMAGE``, ``Job ns/name``); ``log`` holds its last
    lines. ``halted``: stopped by a shutdown before it ended (it runs again next pass)."""

    succeeded: bool
    how: str
    message: str = ""
    log: tuple[str, ...] = ()
    halted: bool = False


def tail(text: str, lines: int = LOG_LINES) -> tuple[str, ...]:
    """The last non-empty lines of a log."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return tuple(kept[-lines:])
