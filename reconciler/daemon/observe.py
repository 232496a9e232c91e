"""Observe the world for a pass: connect to the source providers plans use, read inventories."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.inventory.model import Inventory
from reconciler.manifests.loader import Desired, Manifest
from reconciler.manifests.references import resolve
from reconciler.planner.planner import Observed
from reconciler.plugin_manager import capabilities, connect
from reconciler.secrets.resolver import SecretError, SecretResolver
from reconciler.sources import SourceConnection, SourceError
from reconciler.status.projection import ProviderState
from reconciler.targets.base import HostRef, SourceRef, Target, TargetError
from reconciler.targets.destination import destination_target

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


def connect_provider(
    provider: Manifest, secrets: SecretResolver, desired: Desired | None = None
) -> SourceConnection:
    """Resolve the Provider's secret (never from git) and let its plugin connect, with the
    Provider's Host manifests (migration-network addresses and their credentials)."""
    secret = _provider_secret(provider, secrets)
    return connect(
        provider.spec.type,
        provider.spec.url,
        secret,
        dict(provider.spec.settings),
        provider_hosts(provider, secrets, desired) if desired else {},
    )


def source_ref(
    provider: Manifest, secrets: SecretResolver, desired: Desired | None = None
) -> SourceRef:
    """The source Provider for a copy that connects by itself (a transfer Job), with its
    Host manifests so the Job reads over the hosts' migration networks too."""
    ref = provider.spec.secret
    hosts = []
    for host in desired.of("Host").values() if desired is not None else ():
        pref = host.spec.provider
        if (pref.namespace or host.namespace, pref.name) != (provider.namespace, provider.name):
            continue
        sref = host.spec.secret
        key = (sref.namespace or host.namespace, sref.name) if sref else None
        hosts.append(
            HostRef(
                host.spec.id,
                host.spec.ipAddress,
                key,
                secrets.resolve(*key) if key else {},
            )
        )
    return SourceRef(
        namespace=provider.namespace,
        name=provider.name,
        type=provider.spec.type,
        url=provider.spec.url,
        settings=dict(provider.spec.settings),
        secret_ref=(ref.namespace or provider.namespace, ref.name) if ref else None,
        secret=_provider_secret(provider, secrets),
        hosts=tuple(sorted(hosts, key=lambda h: h.id)),
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


@dataclass
class _Failure:
    fingerprint: str
    count: int
    message: str
    next_try: float  # time.time()


@dataclass
class Sources:
    """Source connections kept across passes, and the backoff of providers that failed.

    A connection is reused while its Provider, secret and Host manifests stay the same, so a
    plugin that keeps an incremental inventory (vSphere's WaitForUpdatesEx) pays only for what
    changed. A provider that cannot be reached or refuses the login is tried again after 15 s,
    30 s, ... up to 10 min (a refused password retried every pass can lock the account), or at
    once when its Provider or secret changes.
    """

    base_delay: float = 15.0
    max_delay: float = 600.0
    clock: Callable[[], float] = time.time
    _live: dict[Key, tuple[str, SourceConnection]] = field(default_factory=dict)
    _failed: dict[Key, _Failure] = field(default_factory=dict)

    def connection(
        self, key: Key, provider: Manifest, secrets: SecretResolver, desired: Desired
    ) -> tuple[SourceConnection | None, Inventory | str]:
        """A live connection and its inventory, or why there is none."""
        try:
            secret, hosts = (
                _provider_secret(provider, secrets),
                provider_hosts(provider, secrets, desired),
            )
        except SecretError as exc:
            return None, str(exc)
        fp = _fingerprint(provider, secret, hosts)
        failed = self._failed.get(key)
        if failed and failed.fingerprint == fp and self.clock() < failed.next_try:
            when = datetime.fromtimestamp(failed.next_try, UTC).strftime("%H:%M:%SZ")
            return None, (
                f"{failed.message} (failed {failed.count} time(s); next attempt after {when}, "
                "or at once when the Provider or its secret changes)"
            )
        live = self._live.get(key)
        if live and live[0] == fp:
            try:
                return live[1], live[1].inventory()
            except Exception:  # noqa: BLE001 - the session may be gone: one fresh connection
                self._drop(key)
        elif live:
            self._drop(key)
        try:
            conn = connect(
                provider.spec.type, provider.spec.url, secret, dict(provider.spec.settings), hosts
            )
        except Exception as exc:  # noqa: BLE001 - a plugin's failure is the provider's state
            return None, self._fail(key, fp, _describe(exc))
        try:
            inv = conn.inventory()
        except Exception as exc:  # noqa: BLE001 - idem: never a crash of the pass
            _close(conn)
            return None, self._fail(key, fp, _describe(exc))
        self._failed.pop(key, None)
        self._live[key] = (fp, conn)
        return conn, inv

    def _fail(self, key: Key, fp: str, message: str) -> str:
        prior = self._failed.get(key)
        count = prior.count + 1 if prior and prior.fingerprint == fp else 1
        delay = min(self.base_delay * 2 ** (count - 1), self.max_delay)
        self._failed[key] = _Failure(fp, count, message, self.clock() + delay)
        return message

    def _drop(self, key: Key) -> None:
        _, conn = self._live.pop(key)
        _close(conn)

    def keep_only(self, keys: set[Key]) -> None:
        """Close connections of providers no plan uses any more."""
        for key in [k for k in self._live if k not in keys]:
            self._drop(key)

    def close(self) -> None:
        for key in list(self._live):
            self._drop(key)


def _describe(exc: Exception) -> str:
    """A SourceError says what to do; anything else a plugin raised is named by its type."""
    if isinstance(exc, SourceError):
        return str(exc)
    return f"the source plugin failed: {type(exc).__name__}: {exc}"


def _provider_secret(provider: Manifest, secrets: SecretResolver) -> dict[str, str]:
    ref = provider.spec.secret
    return secrets.resolve(ref.namespace or provider.namespace, ref.name) if ref else {}


def _fingerprint(provider: Manifest, secret: dict[str, str], hosts: dict[str, Any]) -> str:
    """Changes when anything the connection was made from changes (secrets only as a hash)."""
    blob = json.dumps(
        [provider.spec.type, provider.spec.url, dict(provider.spec.settings), secret, hosts],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _close(conn: SourceConnection) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing must not hide the pass result
        pass


def destination_targets(
    desired: Desired,
    secrets: SecretResolver,
    local: Target,
    cache: dict[Key, tuple[str, Target | str]] | None = None,
) -> dict[Key, Target | str]:
    """The target of every destination Provider (type openshift), or why there is none.

    With ``cache`` (the daemon's), a target is made again only when its Provider or secret
    changed, so its connection pool outlives the pass."""
    cache = {} if cache is None else cache
    out: dict[Key, Target | str] = {}
    for key, provider in desired.of("Provider").items():
        if provider.spec.type != "openshift":
            continue
        spec, ref = provider.spec, provider.spec.secret
        sref = f"{ref.namespace or provider.namespace}/{ref.name}" if ref else None
        try:
            secret = secrets.resolve(*sref.split("/", 1)) if sref else {}
        except SecretError as exc:
            out[key] = f"destination Provider {key[0]}/{key[1]}: {exc}"
            continue
        blob = json.dumps([spec.url, sref, secret, spec.settings], sort_keys=True)
        fingerprint = hashlib.sha256(blob.encode()).hexdigest()
        cached = cache.get(key)
        if cached is None or cached[0] != fingerprint:
            try:
                made: Target | str = destination_target(
                    f"{key[0]}/{key[1]}", spec.url, sref, secret, spec.settings, local
                )
            except TargetError as exc:
                made = str(exc)
            cached = cache[key] = (fingerprint, made)
        out[key] = cached[1]
    return out


def observe(
    desired: Desired,
    secrets: SecretResolver,
    target: Target,
    sources: Sources | None = None,
    destinations: Mapping[Key, Target | str] | None = None,
    also: frozenset[Key] = frozenset(),
) -> tuple[dict[Key, SourceConnection | str], dict[Key, ProviderState], Observed]:
    """Connections (or why not) for every source provider a plan uses, and what they hold;
    the VMs each plan's target namespace already has.

    With ``sources`` (the daemon's), connections outlive the pass; without, the caller closes
    them with :func:`close_all`. ``destinations`` gives the target of each destination
    Provider (or why there is none); one it does not name is ``target``.  ``also`` names
    source providers to connect though no plan uses them (a deleted plan's, to clean up)."""
    sources = sources if sources is not None else Sources()
    used: set[Key] = set()
    for plan in desired.of("Plan").values():
        ref = plan.spec.provider.source
        used.add((ref.namespace or plan.namespace, ref.name))
    used |= {key for key in also if desired.get("Provider", *key) is not None}
    sources.keep_only(used)
    connections: dict[Key, SourceConnection | str] = {}
    states: dict[Key, ProviderState] = {}
    inventories: dict[Key, Inventory | str] = {}
    for key in sorted(used):
        provider = desired.get("Provider", *key)
        if provider is None or provider.spec.type == "openshift":
            continue
        conn, inv = sources.connection(key, provider, secrets, desired)
        if conn is None or isinstance(inv, str):
            connections[key] = inventories[key] = str(inv)
            states[key] = ProviderState(False, str(inv))
            continue
        connections[key], inventories[key] = conn, inv
        counts = {"vms": len(inv.vms), "networks": len(inv.networks), "storages": len(inv.storages)}
        states[key] = ProviderState(True, "Connected; inventory read.", counts)
    dests = destinations or {}
    for key, provider in desired.of("Provider").items():
        if provider.spec.type != "openshift" or key in states:
            continue
        dest = dests.get(key, target)
        if isinstance(dest, str):
            states[key] = ProviderState(False, dest)
        elif dest is target:
            states[key] = ProviderState(True, f"Embedded target: {target.describe()}.")
        else:
            states[key] = ProviderState(True, f"Target: {dest.describe()}.")
    names: dict[str, set[str]] = {}
    unready: dict[Key, str] = {}
    for plan in desired.of("Plan").values():
        dkey = resolve(plan.spec.provider.destination, plan)
        dest = dests.get(dkey, target)
        if isinstance(dest, str):
            unready[dkey] = dest
            continue
        ns = plan.spec.targetNamespace
        try:
            names.setdefault(ns, set()).update(dest.vm_names(ns))
        except Exception as exc:  # noqa: BLE001 - an unreachable cluster is the Provider's state
            why = str(exc) if isinstance(exc, TargetError) else f"{type(exc).__name__}: {exc}"
            unready[dkey] = why
            if dkey in states:
                states[dkey] = ProviderState(False, why)
    observed = Observed(inventories, names, destination_errors=unready, capabilities=capabilities())
    return connections, states, observed


def close_all(connections: dict[Key, SourceConnection | str]) -> None:
    for conn in connections.values():
        if not isinstance(conn, str):
            _close(conn)


def observe_change_tracking(
    desired: Desired, connections: Mapping[Key, SourceConnection | str], observed: Observed
) -> None:
    """Each disk's changed block tracking, for the VMs of warm plans whose VM-wide setting is
    on (the planner holds a plan with a disk that has it off); a source that cannot tell is
    left out, and the initial snapshot checks it again."""
    found: dict[Key, dict[str, dict[str, bool]]] = {}
    for plan in desired.of("Plan").values():
        if not plan.spec.warm:
            continue
        ref = plan.spec.provider.source
        key = (ref.namespace or plan.namespace, ref.name)
        conn, inv = connections.get(key), observed.inventories.get(key)
        read = getattr(conn, "disk_change_tracking", None)
        if not callable(read) or not isinstance(inv, Inventory):
            continue
        for entry in plan.spec.vms:
            vm = inv.find_vm(entry.id, entry.name)
            if vm is None or not vm.change_tracking or vm.id in found.get(key, {}):
                continue
            try:
                found.setdefault(key, {})[vm.id] = read(vm.id)
            except Exception as exc:  # noqa: BLE001 - the initial snapshot checks it again
                log.warning("changed block tracking of %s not read: %s", vm.name, exc)
    observed.disk_change_tracking = found
