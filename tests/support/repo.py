"""Helpers for tests that need a GitOps repo on disk: write files, load them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.manifests.config import RepoConfig, load_config
from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired, load_repo

API = "forklift.konveyor.io/v1beta1"


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(root: Path, config: RepoConfig | None = None) -> Desired:
    if config is None:
        config, errors = load_config(root)
        assert errors == []
    return load_repo(root, config)


def where(e: ManifestError) -> str:
    return str(e.location)


def basic_repo(root: Path, *, plan_extra: str = "", vms: str = "") -> None:
    """Providers, maps and one plan ``plans/plan.yaml`` (namespace openshift-mtv)."""
    write(
        root,
        "providers/providers.yaml",
        f"""
        apiVersion: {API}
        kind: Provider
        metadata:
          name: vsphere
        spec:
          type: vsphere
          url: https://vcenter.example.com/sdk
        ---
        apiVersion: {API}
        kind: Provider
        metadata:
          name: host
        spec:
          type: openshift
        """,
    )
    write(
        root,
        "maps/network.yaml",
        f"""
        apiVersion: {API}
        kind: NetworkMap
        metadata:
          name: net
        spec:
          provider:
            source: {{name: vsphere}}
            destination: {{name: host}}
          map:
            - source: {{id: network-1}}
              destination: {{type: pod}}
            - source: {{name: Storage LAN}}
              destination: {{type: multus, name: storage-lan}}
        """,
    )
    write(
        root,
        "maps/storage.yaml",
        f"""
        apiVersion: {API}
        kind: StorageMap
        metadata:
          name: sto
        spec:
          provider:
            source: {{name: vsphere}}
            destination: {{name: host}}
          map:
            - source: {{id: datastore-1}}
              destination: {{storageClass: fast, accessMode: ReadWriteMany, volumeMode: Block}}
            - source: {{name: slow-ds}}
              destination: {{storageClass: slow}}
        """,
    )
    vms = vms or "    - id: vm-1\n"
    text = (
        f"apiVersion: {API}\n"
        "kind: Plan\n"
        "metadata:\n"
        "  name: plan\n"
        "spec:\n"
        "  targetNamespace: vms\n"
        f"{plan_extra}"
        "  provider:\n"
        "    source: {name: vsphere}\n"
        "    destination: {name: host}\n"
        "  map:\n"
        "    network: {name: net}\n"
        "    storage: {name: sto}\n"
        "  vms:\n"
        f"{vms}"
    )
    (root / "plans").mkdir(parents=True, exist_ok=True)
    (root / "plans/plan.yaml").write_text(text)
