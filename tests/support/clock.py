"""A clock the test moves by hand: code under test that takes a ``clock`` callable sees time pass
only when the test says so, however slowly the machine runs."""

from __future__ import annotations

import threading


class ManualClock:
    """Call it for the time; :meth:`advance` moves it (thread-safe)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
