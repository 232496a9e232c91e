"""A GitOps repo for an oVirt source: the MTV docs' Provider (``type: ovirt``, the engine's
``/ovirt-engine/api`` url, a Secret with user, password and cacert), maps, a Plan and a
Migration."""

from __future__ import annotations

from pathlib import Path

from tests.support.repo import API, write


def ovirt_repo(
    root: Path,
    url: str,
    networks: list[str],
    storages: list[str],
    vms: list[str],
    *,
    migration: bool = True,
) -> None:
    """``networks`` and ``storages`` are map sources as YAML flow text (``{id: ...}``,
    ``{name: ovirtmgmt/ovirtmgmt}``); networks go to the pod network, storages to the
    default class. ``vms`` are Plan entries (``{name: web}``)."""
    write(
        root,
        "providers/rhv.yaml",
        f"""
        apiVersion: {API}
        kind: Provider
        metadata: {{name: rhv, namespace: openshift-mtv}}
        spec:
          type: ovirt
          url: {url}
          secret: {{name: rhv-secret, namespace: openshift-mtv}}
        ---
        apiVersion: {API}
        kind: Provider
        metadata: {{name: host, namespace: openshift-mtv}}
        spec: {{type: openshift}}
        """,
    )
    nets = "\n".join(f"    - source: {n}\n      destination: {{type: pod}}" for n in networks)
    stos = "\n".join(
        f"    - source: {s}\n      destination: {{storageClass: standard}}" for s in storages
    )
    (root / "maps").mkdir(parents=True, exist_ok=True)
    (root / "maps/maps.yaml").write_text(
        f"apiVersion: {API}\nkind: NetworkMap\nmetadata: {{name: rhv-net, namespace: "
        "openshift-mtv}\nspec:\n  provider:\n    source: {name: rhv, namespace: openshift-mtv}\n"
        "    destination: {name: host, namespace: openshift-mtv}\n  map:\n"
        f"{nets}\n---\n"
        f"apiVersion: {API}\nkind: StorageMap\nmetadata: {{name: rhv-sto, namespace: "
        "openshift-mtv}\nspec:\n  provider:\n    source: {name: rhv, namespace: openshift-mtv}\n"
        "    destination: {name: host, namespace: openshift-mtv}\n  map:\n"
        f"{stos}\n"
    )
    entries = "\n".join(f"    - {v}" for v in vms)
    write(
        root,
        "plans/rhv.yaml",
        f"""
        apiVersion: {API}
        kind: Plan
        metadata: {{name: rhv-plan, namespace: openshift-mtv}}
        spec:
          targetNamespace: rhv-vms
          provider:
            source: {{name: rhv, namespace: openshift-mtv}}
            destination: {{name: host, namespace: openshift-mtv}}
          map:
            network: {{name: rhv-net, namespace: openshift-mtv}}
            storage: {{name: rhv-sto, namespace: openshift-mtv}}
          vms:
        """,
    )
    with open(root / "plans/rhv.yaml", "a") as f:
        f.write(entries + "\n")
    if migration:
        write(
            root,
            "migrations/rhv.yaml",
            f"""
            apiVersion: {API}
            kind: Migration
            metadata: {{name: rhv-1, namespace: openshift-mtv}}
            spec:
              plan: {{name: rhv-plan, namespace: openshift-mtv}}
            """,
        )
