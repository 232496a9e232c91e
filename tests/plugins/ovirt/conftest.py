"""The oVirt peers, started once per module: the real ovirt-imageio daemon (its own cached
virtualenv), qemu-nbd exports, and the test engine (``testpeers/ovirt``); the world they
hold comes from ``tests/support/ovirt_engine.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ovirt_engine import World, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = make_world(tmp_path_factory.mktemp("ovirt"))
    yield w
    w.peer.stop()
