"""Observe the world for a pass: connect to the source providers plans use, read inventories."""

from __future__ import annotations

from typing import Any

from reconciler.inventory.model import Inventory
from reconciler.manifests.loader import Desired, Manifest
from reconciler.planner.planner import Observed
from reconciler.plugins import connect
from reconciler.secrets.resolver import SecretError, SecretResolver
from reconciler.sources import SourceConnection, SourceError
from reconciler.status.projection import ProviderState
from reconciler.targets.base import Target

Key = tuple[str, str]


def connect_provider(
    provider: Manifest, secrets: SecretResolver, desired: Desired | None = None
) -> SourceConnection:
    """Resolve the Provider's secret (never from git) and let its plugin connect, with the
    Provider's Host manifests (migration-network addresses and their credentials)."""
    secret: dict[str, str] = {}
    if provider.spec.secret is not None:
        ref = provider.spec.secret
        secret = secrets.resolve(ref.namespace or provider.namespace, ref.name)
    return connect(
        provider.spec.type,
        provider.spec.url,
        secret,
        dict(provider.spec.settings),
        provider_hosts(provider, secrets, desired) if desired else {},
    )


def provider_hosts(
    provider: Manifest, secrets: SecretResolver, desired: Desired
) -> dict[str, dict[str, Any]]:
    """``{host id: {"ipAddress", "secret"}}`` for the Host manifests of ``provider``."""
    out: dict[str, dict[str, Any]] = {}
    for host in desired.of("Host").values():
        ref = host.spec.provider
        if (ref.namespace or host.namespace, ref.name) != (provider.namespace, provider.name):
            continue
        secret: dict[str, str] = {}
        if host.spec.secret is not None:
            sref = host.spec.secret
            secret = secrets.resolve(sref.namespace or host.namespace, sref.name)
        out[host.spec.id] = {"ipAddress": host.spec.ipAddress, "secret": secret, "name": host.name}
    return out


def observe(
    desired: Desired, secrets: SecretResolver, target: Target
) -> tuple[dict[Key, SourceConnection | str], dict[Key, ProviderState], Observed]:
    """Connections (or why not) for every source provider a plan uses, and what they hold."""
    used: set[Key] = set()
    for plan in desired.of("Plan").values():
        ref = plan.spec.provider.source
        used.add((ref.namespace or plan.namespace, ref.name))
    connections: dict[Key, SourceConnection | str] = {}
    states: dict[Key, ProviderState] = {}
    inventories: dict[Key, Inventory | str] = {}
    for key in sorted(used):
        provider = desired.get("Provider", *key)
        if provider is None or provider.spec.type == "openshift":
            continue
        try:
            conn = connect_provider(provider, secrets, desired)
        except (SourceError, SecretError) as exc:
            connections[key] = inventories[key] = str(exc)
            states[key] = ProviderState(False, str(exc))
            continue
        try:
            inv = conn.inventory()
        except SourceError as exc:
            conn.close()
            connections[key] = inventories[key] = str(exc)
            states[key] = ProviderState(False, str(exc))
            continue
        connections[key], inventories[key] = conn, inv
        counts = {"vms": len(inv.vms), "networks": len(inv.networks), "storages": len(inv.storages)}
        states[key] = ProviderState(True, "Connected; inventory read.", counts)
    for key, provider in desired.of("Provider").items():
        if provider.spec.type == "openshift" and key not in states:
            states[key] = ProviderState(True, f"Embedded target: {target.describe()}.")
    names = {
        p.spec.targetNamespace: target.vm_names(p.spec.targetNamespace)
        for p in desired.of("Plan").values()
    }
    return connections, states, Observed(inventories, names)


def close_all(connections: dict[Key, SourceConnection | str]) -> None:
    for conn in connections.values():
        if not isinstance(conn, str):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing must not hide the pass result
                pass
