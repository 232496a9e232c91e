"""A GitOps repo for an oVirt source: the MTV docs' Provider (``type: ovirt``, the engine's
``/ovirt-engine/api`` url, a Secret with user, password and cacert), maps, a Plan and a
Migration."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.support.repo import API

HOST = f"""---
apiVersion: {API}
kind: Provider
metadata: {{name: host, namespace: openshift-mtv}}
spec: {{type: openshift}}
"""


def ovirt_files(
    url: str,
    networks: list[str],
    storages: list[str],
    vms: list[str],
    *,
    migration: bool = True,
    host: bool = True,
    config: str = "",
) -> dict[str, str]:
    """The repo's files, path -> text. ``networks`` and ``storages`` are map sources as YAML
    flow text (``{id: ...}``, ``{name: ovirtmgmt/ovirtmgmt}``); networks go to the pod
    network, storages to the class ``standard``. ``vms`` are Plan entries (``{name: web}``).
    ``host``: add the destination Provider ``host`` (a repo seeded from examples/repo has it)."""
    provider = textwrap.dedent(
        f"""\
        apiVersion: {API}
        kind: Provider
        metadata: {{name: rhv, namespace: openshift-mtv}}
        spec:
          type: ovirt
          url: {url}
          secret: {{name: rhv-secret, namespace: openshift-mtv}}
        """
    )
    nets = "\n".join(f"    - source: {n}\n      destination: {{type: pod}}" for n in networks)
    stos = "\n".join(
        f"    - source: {s}\n      destination: {{storageClass: standard}}" for s in storages
    )
    ends = (
        "  provider:\n    source: {name: rhv, namespace: openshift-mtv}\n"
        "    destination: {name: host, namespace: openshift-mtv}\n  map:\n"
    )
    maps = (
        f"apiVersion: {API}\nkind: NetworkMap\n"
        "metadata: {name: rhv-net, namespace: openshift-mtv}\n"
        f"spec:\n{ends}{nets}\n---\n"
        f"apiVersion: {API}\nkind: StorageMap\n"
        "metadata: {name: rhv-sto, namespace: openshift-mtv}\n"
        f"spec:\n{ends}{stos}\n"
    )
    entries = "".join(f"    - {v}\n" for v in vms)
    plan = (
        f"apiVersion: {API}\nkind: Plan\nmetadata: {{name: rhv-plan, namespace: openshift-mtv}}\n"
        "spec:\n  targetNamespace: rhv-vms\n"
        "  provider:\n    source: {name: rhv, namespace: openshift-mtv}\n"
        "    destination: {name: host, namespace: openshift-mtv}\n"
        "  map:\n    network: {name: rhv-net, namespace: openshift-mtv}\n"
        "    storage: {name: rhv-sto, namespace: openshift-mtv}\n"
        f"  vms:\n{entries}"
    )
    files = {
        "providers/rhv.yaml": provider + (HOST if host else ""),
        "maps/rhv.yaml": maps,
        "plans/rhv-plan.yaml": plan,
    }
    if migration:
        files["migrations/rhv-plan-1.yaml"] = (
            f"apiVersion: {API}\nkind: Migration\n"
            "metadata: {name: rhv-plan-1, namespace: openshift-mtv}\n"
            "spec:\n  plan: {name: rhv-plan, namespace: openshift-mtv}\n"
        )
    if config:
        files[".mtv-gitops.yaml"] = config
    return files


def ovirt_repo(root: Path, url: str, networks: list[str], storages: list[str], vms: list[str],
               **kw) -> None:  # fmt: skip
    """Write :func:`ovirt_files` under ``root``."""
    for rel, text in ovirt_files(url, networks, storages, vms, **kw).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def secrets_file(path: Path, secret: dict[str, str], **others: dict[str, str]) -> dict[str, str]:
    """The local secrets file holding the Provider's Secret (and ``others``, ``"ns/name"``
    written ``ns__name``); the environment that names it."""
    doc = {"openshift-mtv/rhv-secret": secret}
    doc |= {k.replace("__", "/"): v for k, v in others.items()}
    path.write_text(json.dumps(doc))  # JSON is YAML
    return {"MTV_GITOPS_SECRETS": str(path)}
