"""The plugin manager: source plugins come from the ``mtv_gitops.sources`` entry points.

Everything the core knows about a provider type it learns here, from the plugins' answers to
the hooks in :mod:`reconciler.hookspecs`: which types exist, their rules, capabilities, secret
keys and optional packages.  A plugin whose module cannot be imported is left out (and said so
by :func:`load_problems`) instead of taking every other source down with it.
"""

from __future__ import annotations

import importlib.metadata
import logging
from functools import cache
from pathlib import Path
from typing import Any

import pluggy

from reconciler import hookspecs
from reconciler.sources import (
    Capabilities,
    DemoSource,
    Requirements,
    Rules,
    SourceConnection,
    SourceError,
)

ENTRY_POINT_GROUP = "mtv_gitops.sources"
DESTINATION_TYPE = "openshift"  # the target's Provider type: the core's own, never a plugin's
log = logging.getLogger(__name__)


class _Loaded:
    """The manager and what went wrong while loading plugins."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.problems: list[str] = []


@cache
def _loaded() -> _Loaded:
    loaded = _Loaded()
    pm = loaded.pm
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue  # the same distribution seen twice on sys.path
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            why = f"source plugin {ep.name} ({ep.value}) cannot be loaded: {type(exc).__name__}"
            why += f": {exc}"
            log.warning("%s", why)
            loaded.problems.append(why)
            continue
        pm.register(plugin, name=ep.name)
    pm.check_pending()
    owners: dict[str, str] = {}
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "mtv_gitops_source_types", None)
        name = pm.get_name(plugin) or repr(plugin)
        for t in impl() if impl else []:
            if t == DESTINATION_TYPE:
                raise RuntimeError(f"plugin {name} claims {t!r}, the destination provider type")
            if t in owners:
                raise RuntimeError(
                    f"provider type {t!r} is claimed by two plugins: {owners[t]} and {name}"
                )
            owners[t] = name
    return loaded


def plugin_manager() -> pluggy.PluginManager:
    """Every installed source plugin, loaded once; an implementation without a spec fails loudly."""
    return _loaded().pm


def load_problems() -> list[str]:
    """Why installed plugins could not be loaded (each names the plugin and the error)."""
    return list(_loaded().problems)


def source_types() -> list[str]:
    """Every Provider ``spec.type`` a loaded plugin answers for."""
    return sorted({t for types in plugin_manager().hook.mtv_gitops_source_types() for t in types})


def rules_of(provider_type: str) -> Rules | None:
    """The type's Rego package and default rules folder; None when no plugin gives rules."""
    return plugin_manager().hook.mtv_gitops_rules(provider_type=provider_type)


def rule_types() -> list[str]:
    """The provider types that have validation rules."""
    return [t for t in source_types() if rules_of(t) is not None]


def capabilities() -> dict[str, Capabilities]:
    """Provider type -> what its source can do: the data the planner decides with."""
    hook = plugin_manager().hook.mtv_gitops_capabilities
    return {t: hook(provider_type=t) or Capabilities() for t in source_types()}


def secret_keys() -> tuple[str, ...]:
    """Every Secret key an installed source reads (beyond the keys all sources share)."""
    hook = plugin_manager().hook.mtv_gitops_secret_keys
    return tuple(sorted({k for t in source_types() for k in hook(provider_type=t) or ()}))


def requirements_problem(provider_type: str) -> str:
    """Which extra to install for ``provider_type``, "" when nothing is missing."""
    req: Requirements | None = plugin_manager().hook.mtv_gitops_requirements(
        provider_type=provider_type
    )
    return req.problem(provider_type) if req is not None else ""


def connect(
    provider_type: str,
    url: str,
    secret: dict[str, str],
    settings: dict[str, Any],
    hosts: dict[str, dict[str, Any]] | None = None,
) -> SourceConnection:
    """A connection from whichever plugin answers for ``provider_type``."""
    if provider_type in source_types():
        missing = requirements_problem(provider_type)
        if missing:
            raise SourceError(missing)
    conn = plugin_manager().hook.mtv_gitops_connect(
        provider_type=provider_type, url=url, secret=secret, settings=settings, hosts=hosts or {}
    )
    if conn is None:
        known = ", ".join(source_types()) or "none"
        raise SourceError(
            f"no source plugin for provider type {provider_type!r} (installed: {known})"
        )
    return conn


def connect_one(
    provider_type: str,
    url: str,
    secret: dict[str, str],
    settings: dict[str, Any],
    hosts: dict[str, dict[str, Any]] | None = None,
) -> SourceConnection:
    """``connect``, loading only the plugin whose entry point is named ``provider_type`` when
    it claims that type (a transfer Job's process reads one source: the others' imports
    are start-up time it does not need); any other case is ``connect``."""
    found = [
        ep
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.name == provider_type
    ]
    if len(found) == 1:
        try:
            plugin = found[0].load()
        except Exception:  # noqa: BLE001 - connect loads them all and reports it
            plugin = None
        claims = getattr(plugin, "mtv_gitops_source_types", None)
        if claims is not None and provider_type in claims():
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            pm.register(plugin, name=found[0].name)
            req = pm.hook.mtv_gitops_requirements(provider_type=provider_type)
            missing = req.problem(provider_type) if req is not None else ""
            if missing:
                raise SourceError(missing)
            conn = pm.hook.mtv_gitops_connect(
                provider_type=provider_type,
                url=url,
                secret=secret,
                settings=settings,
                hosts=hosts or {},
            )
            if conn is not None:
                return conn
    return connect(provider_type, url, secret, settings, hosts)


def demo_source(name: str, workspace: Path) -> DemoSource | None:
    """The source a demo migrates from, from whichever plugin has that demo."""
    return plugin_manager().hook.mtv_gitops_demo(name=name, workspace=workspace)
