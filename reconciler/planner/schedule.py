"""Which VMs of a Migration start now and which wait, under ``controller_max_vm_inflight``.

MTV counts the limit per source host where the source says so (vSphere: the VMs whose disks the
same ESXi host serves share its NFC connections; a plugin declares it as the capability
``inflight_per_host``) and per plan for the other providers.  Pure: the pass asks again each
time a VM finishes, with what is still queued and what is still in flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconciler.manifests.loader import Desired
from reconciler.manifests.models import ForkliftControllerSpec

SETTING = "controller_max_vm_inflight"


@dataclass(frozen=True)
class Job:
    """A VM to run: its id and the source host it counts against ("" when it has none)."""

    vm_id: str
    host: str = ""


@dataclass(frozen=True)
class Schedule:
    """The answer: VMs to start now (in queue order), and why each other VM waits."""

    start: tuple[str, ...] = ()
    waiting: dict[str, str] = field(default_factory=dict)  # vm id -> reason, for status


def schedule(
    queued: Sequence[Job], in_flight: Iterable[Job], limit: int, per_host: bool
) -> Schedule:
    """Start queued VMs in order while their bucket (their host, or the plan) has room.

    A queued VM that is already in flight is neither started again nor reported as waiting.
    """
    if limit < 1:
        raise ValueError(f"{SETTING} must be at least 1, not {limit}")
    running = list(in_flight)
    busy = {j.vm_id for j in running}
    counts = Counter(_bucket(j, per_host) for j in running)
    start: list[str] = []
    waiting: dict[str, str] = {}
    for job in queued:
        if job.vm_id in busy:
            continue
        bucket = _bucket(job, per_host)
        if counts[bucket] < limit:
            counts[bucket] += 1
            busy.add(job.vm_id)
            start.append(job.vm_id)
        else:
            waiting[job.vm_id] = _reason(counts[bucket], bucket, limit, per_host)
    return Schedule(tuple(start), waiting)


def _bucket(job: Job, per_host: bool) -> str:
    return job.host if per_host else ""


def _reason(count: int, host: str, limit: int, per_host: bool) -> str:
    vms = f"{count} VM{'s' if count != 1 else ''} in flight"
    if not per_host:
        where = "in the plan"
    elif host:
        where = f"on host {host}"
    else:
        where = "on an unknown host"
    return f"waiting: {vms} {where} ({SETTING}: {limit})"


def controller_settings(desired: Desired, namespace: str) -> ForkliftControllerSpec:
    """The ForkliftController that governs plans of ``namespace``.

    MTV runs one controller in its own namespace, which is where plans usually live: the one in
    the plan's namespace wins, else the first by namespace and name, else the defaults.
    """
    found = desired.of("ForkliftController")
    for key in sorted(found):
        if key[0] == namespace:
            return found[key].spec
    if found:
        return found[min(found)].spec
    return ForkliftControllerSpec()
