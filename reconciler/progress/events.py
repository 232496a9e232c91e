"""What the pipeline tells the rest of the process while it works: small typed events.

A VM's steps emit an :class:`Event` for every transition (a step starts or ends, a VM pauses or
finishes, a Migration ends) and for disk copy progress; they never call the status writer, the
CLI's progress bars or the metrics themselves.  Those subscribe to an :class:`EventBus`.  A
subscriber runs on the emitting thread (a VM's worker, a copy's progress callback), so it must
return at once: it records the event and leaves slow work (a git push) to its own thread.  A
subscriber that raises is logged and dropped from nothing else: the copy goes on.

The module sits at the bottom of the layers (beside the progress store) so every layer that
works or watches work -- pipeline, status, daemon, CLI -- can name the same record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class Kind(StrEnum):
    """What an event is about."""

    STEP = "step"  # a step of a VM's itinerary started or ended (``outcome`` says how)
    DISK = "disk"  # a disk's copy moved on (``progress`` says how far)
    VM = "vm"  # a VM started, paused or ended (``outcome``: Running, Paused, or its result)
    MIGRATION = "migration"  # a Migration of the plan ended (``outcome``: its result)
    PLAN = "plan"  # something about a plan changed outside any VM (a VM canceled while queued)


@dataclass(frozen=True)
class DiskProgress:
    """How far a disk's copy is; bytes are logical (holes included), as the engine counts."""

    total: int
    bytes_done: int
    resumed_bytes: int = 0  # of ``bytes_done``, what an earlier run had copied already
    rate: float = 0.0  # bytes per second
    eta: float | None = None  # seconds left, None when unknown


@dataclass(frozen=True)
class Event:
    """One thing that happened to a VM (or a plan) in the pipeline.

    ``phase`` is the itinerary step (``CopyDisks``, ``Precopy`` ...) or, for a VM event, the
    phase the VM is left in; ``outcome`` is Running, Completed, Skipped, Failed, Canceled,
    Paused or Succeeded; ``message`` is what status says about it.
    """

    kind: Kind
    plan: str
    vm_id: str = ""
    vm_name: str = ""  # the source VM's name
    namespace: str = ""  # where the VM goes on the target
    target_name: str = ""
    phase: str = ""
    outcome: str = ""
    message: str = ""
    disk: str = ""  # the PVC's name, for disk events
    progress: DiskProgress | None = None
    migration: str = ""  # the Migration running the VM (the daemon fills it in for watchers)

    @property
    def transition(self) -> bool:
        """True when a person watching status should see this soon: a VM or a Migration
        changed state.  Steps and disk progress are written at the status pace."""
        return self.kind in (Kind.VM, Kind.MIGRATION, Kind.PLAN)


Subscriber = Callable[[Event], None]


class EventBus:
    """Hands each event to every subscriber, in the order they subscribed; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add *subscriber*; returns the call that removes it again."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Give *event* to every subscriber; one that raises is logged, never the emitter's
        problem (a broken progress bar must not fail a copy)."""
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - the pipeline goes on whatever a watcher does
                log.exception("event subscriber %r failed on %s", subscriber, event.kind)


class Recorder:
    """A subscriber that keeps every event and lets a thread wait for one (tests, tools)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, match: Callable[[Event], bool], timeout: float | None = None) -> Event:
        """The first event (seen or to come) that *match* accepts; TimeoutError after
        *timeout* seconds (a guard against a hang, not a measure of speed)."""
        with self._cond:
            found: list[Event] = []

            def seen() -> bool:
                found[:] = [e for e in self.events if match(e)][:1]
                return bool(found)

            if not self._cond.wait_for(seen, timeout):
                raise TimeoutError("no such event")
            return found[0]
