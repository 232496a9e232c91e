"""A real vCenter simulator (govmomi's, from Debian's packages) built once and run per module.

The helpers around it live in ``tests/support/vsphere.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.vsphere import Simulator, start_simulator


@pytest.fixture(scope="module")
def vcsim() -> Iterator[Simulator]:
    sim = start_simulator(hosts=2, vms=3, datastores=2, password="vc-Secret-7781")
    yield sim
    sim.stop()
