"""A bandwidth cap for disk reads, so a migration can share a link with production traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from reconciler.transfer.extents import DiskReader, Extent


class ThrottledReader:
    """Wraps a DiskReader; all threads together read at most ``rate`` bytes per second."""

    def __init__(self, inner: DiskReader, rate: float) -> None:
        self.inner = inner
        self.size = inner.size
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def extents(self) -> Iterator[Extent]:
        return self.inner.extents()

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + length / self.rate
        if start > now:
            time.sleep(start - now)
        return self.inner.read(offset, length)

    def close(self) -> None:
        self.inner.close()
