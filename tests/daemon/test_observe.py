"""Source connections across passes: reuse while nothing changed, back off after failures."""

from __future__ import annotations

from pathlib import Path

from plugins.ova.factory import build_ova
from reconciler.daemon.observe import Sources, observe
from reconciler.secrets.resolver import SecretResolver
from reconciler.targets.local import LocalTarget
from tests.support.repo import load, write
from tests.support.workspace import small_vm

PROVIDER = """
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {{name: ova-files, namespace: openshift-mtv}}
spec: {{type: ova, url: {url}}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {{name: p, namespace: openshift-mtv}}
spec:
  targetNamespace: vms
  provider:
    source: {{name: ova-files, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: n, namespace: openshift-mtv}}
    storage: {{name: s, namespace: openshift-mtv}}
  vms: [{{name: vm-a}}]
"""
KEY = ("openshift-mtv", "ova-files")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_provider_is_retried_with_backoff_and_at_once_when_it_changes(tmp_path):
    clock = Clock()
    sources = Sources(clock=clock)
    target = LocalTarget(tmp_path / "cluster")
    repo = tmp_path / "repo"
    missing = tmp_path / "no-such-folder"
    write(repo, "p.yaml", PROVIDER.format(url=missing))

    def state():
        conns, states, _ = observe(load(repo), SecretResolver(), target, sources)
        return conns[KEY], states[KEY]

    conn, st = state()
    assert isinstance(conn, str) and not st.ready and str(missing) in st.message
    _, st = state()  # within the backoff: not tried again, and says when it will be
    assert "failed 1 time(s); next attempt after" in st.message
    clock.now += 16
    _, st = state()
    assert "failed 2 time(s)" not in st.message  # tried again: the plain error
    _, st = state()
    assert "failed 2 time(s)" in st.message  # ... and now 30 s of backoff
    clock.now += 16
    _, st = state()
    assert "failed 2 time(s)" in st.message  # 16 s < 30 s: still waiting

    folder = tmp_path / "ova"
    folder.mkdir()
    build_ova(folder / "vm-a.ova", **small_vm("vm-a", 1, data_mib=1, capacity_mib=16))
    write(repo, "p.yaml", PROVIDER.format(url=folder))  # the Provider changed: at once
    conn, st = state()
    assert st.ready and not isinstance(conn, str)
    again, _ = state()
    assert again is conn  # unchanged: the same live connection is reused
    sources.close()


def test_without_sources_each_call_connects_afresh(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "p.yaml", PROVIDER.format(url=tmp_path / "none"))
    for _ in range(2):
        _, states, _ = observe(load(repo), SecretResolver(), LocalTarget(tmp_path / "c"))
        assert "next attempt" not in states[KEY].message


HOSTS = """
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {name: vcenter, namespace: openshift-mtv}
spec:
  type: vsphere
  url: https://vcenter.example.com/sdk
  secret: {name: vc, namespace: openshift-mtv}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Host
metadata: {name: esx-1, namespace: openshift-mtv}
spec:
  provider: {namespace: openshift-mtv, name: vcenter}
  id: host-21
  ipAddress: 10.10.0.21
  secret: {name: esx-1, namespace: openshift-mtv}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Host
metadata: {name: other, namespace: openshift-mtv}
spec:
  provider: {namespace: openshift-mtv, name: another-vcenter}
  id: host-99
  ipAddress: 10.10.0.99
"""


def test_a_providers_host_manifests_reach_its_plugin_with_their_secrets(tmp_path) -> None:
    from reconciler.daemon.observe import provider_hosts

    repo = tmp_path / "repo"
    write(repo, "p.yaml", HOSTS)
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("openshift-mtv/esx-1:\n  user: root\n  password: esx-pw\n")
    desired = load(repo)
    provider = desired.get("Provider", "openshift-mtv", "vcenter")
    hosts = provider_hosts(provider, SecretResolver(secrets, environ={}), desired)
    assert hosts == {
        "host-21": {
            "ipAddress": "10.10.0.21",
            "secret": {"user": "root", "password": "esx-pw"},
            "name": "esx-1",
        }
    }
