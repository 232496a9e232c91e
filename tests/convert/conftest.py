"""The real guest, built once per recipe and cached (tests/support/guest.py)."""

from __future__ import annotations

import pytest

from tests.support.guest import Guest, ensure_guest


@pytest.fixture(scope="session")
def guest() -> Guest:
    """A VMware-like Debian guest; the first build takes minutes, later runs reuse it."""
    return ensure_guest(log=lambda line: None)
