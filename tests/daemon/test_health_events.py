"""The metrics are fed by the pipeline's events: copied bytes from disk progress (what an
earlier run copied is not counted again), VM results from a VM's end, every event a sign of
life."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.health import Health
from reconciler.progress.events import DiskProgress, Event, EventBus, Kind


def _samples(health: Health) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(health.metrics())
        for s in family.samples
    }


def _disk(done: int, resumed: int = 0, vm: str = "vm-1") -> Event:
    return Event(Kind.DISK, "ns/p", vm, disk="d0", progress=DiskProgress(100, done, resumed))


def test_copied_bytes_and_vm_results_come_from_events() -> None:
    now = [0.0]
    health = Health(stuck_after=10, clock=lambda: now[0])
    bus = EventBus()
    bus.subscribe(health)
    bus.emit(_disk(30, resumed=20))  # 20 bytes were copied by an earlier run
    bus.emit(_disk(60, resumed=20))
    now[0] = 9.0
    bus.emit(Event(Kind.STEP, "ns/p", "vm-1", phase="CopyDisks", outcome="Completed"))
    now[0] = 15.0
    assert health.liveness()[0]  # the step was a sign of life
    bus.emit(Event(Kind.VM, "ns/p", "vm-1", phase="Completed", outcome="Succeeded"))
    bus.emit(_disk(10, vm="vm-2"))
    bus.emit(Event(Kind.VM, "ns/p", "vm-2", phase="Failed", outcome="Failed"))
    bus.emit(Event(Kind.VM, "ns/p", "vm-3", phase="CopyingPaused", outcome="Paused"))
    samples = _samples(health)
    assert samples[("mtv_gitops_copied_bytes_total", ())] == 40 + 10
    results = {k[1][0][1]: v for k, v in samples.items() if k[0] == "mtv_gitops_vm_results_total"}
    assert results == {"Succeeded": 1, "Failed": 1}
