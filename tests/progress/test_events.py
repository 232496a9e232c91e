"""The event bus: every subscriber hears every event, in order; one that raises does not stop
the emitter or the others (a broken progress bar must not fail a copy)."""

from __future__ import annotations

import threading

import pytest

from reconciler.progress.events import DiskProgress, Event, EventBus, Kind, Recorder


def test_subscribers_hear_every_event_and_a_failing_one_harms_nothing() -> None:
    bus = EventBus()
    first, last = Recorder(), Recorder()
    bus.subscribe(first)

    def broken(event: Event) -> None:
        raise RuntimeError("a watcher's bug")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(last)
    step = Event(Kind.STEP, "ns/p", "vm-1", phase="CopyDisks", outcome="Running")
    disk = Event(Kind.DISK, "ns/p", "vm-1", disk="d0", progress=DiskProgress(8, 4))
    bus.emit(step)
    unsubscribe()
    bus.emit(disk)
    assert first.events == [step, disk]
    assert last.events == [step]


def test_transitions_are_what_status_writes_at_once() -> None:
    assert Event(Kind.VM, "ns/p", outcome="Succeeded").transition
    assert Event(Kind.MIGRATION, "ns/p", outcome="Failed").transition
    assert not Event(Kind.STEP, "ns/p", outcome="Completed").transition
    assert not Event(Kind.DISK, "ns/p").transition


def test_a_recorder_hands_an_event_to_a_waiting_thread() -> None:
    seen = Recorder()
    waiting = threading.Event()
    found: list[Event] = []

    def wait() -> None:
        waiting.set()
        found.append(seen.wait_for(lambda e: e.outcome == "Succeeded", 60))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait(60)
    seen(Event(Kind.STEP, "ns/p", outcome="Running"))
    seen(Event(Kind.VM, "ns/p", outcome="Succeeded"))
    thread.join(60)
    assert [e.outcome for e in found] == ["Succeeded"]
    with pytest.raises(TimeoutError):
        seen.wait_for(lambda e: e.outcome == "Failed", 0)
