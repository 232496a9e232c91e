"""The kubevirt target, pointed at the emulated cluster (``cluster`` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from reconciler.targets.kubevirt.target import KubevirtTarget
from reconciler.targets.kubevirt.transfer_job import JobSettings
from tests.support.cluster import TOKEN, Cluster


@pytest.fixture
def target(cluster: Cluster) -> KubevirtTarget:
    return KubevirtTarget.from_url(
        cluster.url, TOKEN, settings=JobSettings(image="example.org/mtv:1", poll_seconds=0.05)
    )
