"""Fixtures the transfer tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.progress.store import ProgressStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ProgressStore]:
    """A fresh progress store (the copies' checkpoints), closed after the test."""
    s = ProgressStore(tmp_path / "progress.db")
    yield s
    s.close()
