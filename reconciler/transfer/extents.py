"""The reader and writer contracts between source plugins, the engine and targets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Extent:
    """A byte range of a disk; ``zero`` means it reads as zeros and need not be copied."""

    start: int
    length: int
    zero: bool

    @property
    def end(self) -> int:
        return self.start + self.length


class DiskReader(Protocol):
    """Random-access reads of a disk's logical (guest-visible) content.

    ``read`` must be safe to call from several threads at once: the engine runs parallel
    streams over one reader.  Two optional methods let the engine skip a copy per chunk:
    ``readinto(offset, buf) -> int`` fills a buffer it reuses, and ``mapped(offset, length)``,
    a context manager yielding a read-only view of the bytes where they lie (a raw target's
    pages, which the engine hashes to verify what it wrote).
    """

    size: int

    def extents(self) -> Iterator[Extent]:
        """Data and zero extents covering ``[0, size)`` in order."""

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset`` (short only at end of disk)."""

    def close(self) -> None: ...


class DiskWriter(Protocol):
    """Positional writes into a target disk that starts out reading as zeros."""

    size: int

    def write(self, offset: int, data: bytes) -> None: ...

    def flush(self) -> None:
        """Make everything written so far durable."""

    def close(self) -> None: ...
