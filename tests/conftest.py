"""Fixtures more than one test folder uses: an emulated Kubernetes API server (kmock) and the
kubelet the tests play for it (``tests/targets/cluster.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, Kubelet


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def kubelet(cluster: Cluster, tmp_path: Path) -> Iterator[Kubelet]:
    k = Kubelet(cluster, tmp_path / "kubelet").start()
    yield k
    k.stop()
