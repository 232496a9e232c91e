"""A real vCenter simulator (govmomi's, from Debian's packages) built once and run per test.

The simulator ships with the vSphere plugin (``plugins.vsphere.simulator``, which the warm demo
uses too); the names tests import from here are re-exported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plugins.vsphere.simulator import (
    GOPATH,
    SOURCE,
    Simulator,
    SimulatorUnavailable,
)
from plugins.vsphere.simulator import simulator_binary as _build
from plugins.vsphere.simulator import start_simulator as _start


def simulator_binary():
    """The built simulator; a test fails (with the reason) when it cannot be built."""
    try:
        return _build()
    except SimulatorUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def start_simulator(**flags: int | str) -> Simulator:
    simulator_binary()  # fail the test with the reason when it cannot be built
    return _start(**flags)


@pytest.fixture(scope="module")
def vcsim() -> Iterator[Simulator]:
    sim = start_simulator(hosts=2, vms=3, datastores=2, password="vc-Secret-7781")
    yield sim
    sim.stop()


__all__ = ["GOPATH", "SOURCE", "Simulator", "simulator_binary", "start_simulator", "vcsim"]
