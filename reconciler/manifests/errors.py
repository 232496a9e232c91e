"""Errors that point at the exact place in the user's repo."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Location:
    """A 1-based position in a file of the repo (path relative to the repo root)."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class ManifestError:
    """One problem in the desired state; ``obj`` names the object when there is one."""

    location: Location
    message: str
    obj: str = ""  # "Kind namespace/name"

    def __str__(self) -> str:
        where = f" ({self.obj})" if self.obj else ""
        return f"{self.location}: {self.message}{where}"
