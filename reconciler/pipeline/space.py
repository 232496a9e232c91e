"""Free space reserved for the VMs that copy at once onto one target.

Each VM's AllocateDisks checks that the data it will write fits in what the target has free;
VMs that start together all see the same free space, so two that each fit alone would both
start and both fail mid-copy. A VM reserves the bytes it will write, until its copy ends
(done or failed), and the next VM's check counts what is reserved beside what is free.
The ledger is per target object and per process: one reconciler holds a state folder, so its
passes are the only writers it knows of.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field


@dataclass
class _Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: dict[str, int] = field(default_factory=dict)  # VM key -> bytes reserved


_ledgers: weakref.WeakKeyDictionary[object, _Ledger] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def _ledger(target: object) -> _Ledger:
    with _guard:
        ledger = _ledgers.get(target)
        if ledger is None:
            ledger = _ledgers[target] = _Ledger()
        return ledger


def reserve(target: object, key: str, needed: int, free: int) -> int | None:
    """Reserve ``needed`` bytes for VM ``key`` when they fit in ``free`` minus what other VMs
    hold; returns None when reserved, else the bytes the others hold (for the message)."""
    ledger = _ledger(target)
    with ledger.lock:
        others = sum(n for k, n in ledger.held.items() if k != key)
        if needed > free - others:
            return others
        ledger.held[key] = needed
        return None


def release(target: object, key: str) -> None:
    """The VM's copy ended: what it reserved is written (or given up)."""
    ledger = _ledger(target)
    with ledger.lock:
        ledger.held.pop(key, None)


def reserved(target: object) -> int:
    ledger = _ledger(target)
    with ledger.lock:
        return sum(ledger.held.values())
