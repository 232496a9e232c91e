"""Fixtures more than one test folder uses: an emulated Kubernetes API server (kmock), the
kubelet the tests play for it (``tests/support/cluster.py``), and real GitOps workspaces
(``tests/support/workspace.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, Kubelet
from tests.support.workspace import Workspace, make_workspace


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


@pytest.fixture
def workspace_factory(tmp_path: Path):
    """Make a workspace (OVA files, a bare remote, a user clone) under the test's tmp_path."""

    def make(vms: list[dict], **build_kw) -> Workspace:
        return make_workspace(tmp_path, vms, **build_kw)

    return make


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory: pytest.TempPathFactory):
    """Real Keystone and Glance with our Nova/Cinder/Neutron (testpeers/openstack/cloud.py),
    started once for the session when a test asks for it."""
    from testpeers.openstack.cloud import openstack_cloud_fixture

    yield from openstack_cloud_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def nfs_server(tmp_path_factory: pytest.TempPathFactory):
    """A real NFS server (nfs-ganesha in user space on 127.0.0.1, tests/support/nfs_server.py),
    started once for the session when a test asks for it."""
    from tests.support.nfs_server import nfs_server_fixture

    yield from nfs_server_fixture(tmp_path_factory)
