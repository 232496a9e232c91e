"""The plugin manager: source plugins come from the ``mtv_gitops.sources`` entry points."""

from __future__ import annotations

from functools import cache
from typing import Any

import pluggy

from reconciler import hookspecs
from reconciler.sources import SourceConnection, SourceError

ENTRY_POINT_GROUP = "mtv_gitops.sources"


@cache
def plugin_manager() -> pluggy.PluginManager:
    """Load every installed source plugin; an implementation without a spec fails loudly."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    owners: dict[str, str] = {}
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "mtv_gitops_source_types", None)
        for t in impl() if impl else []:
            if t in owners:
                raise RuntimeError(f"provider type {t!r} is claimed by two plugins")
            owners[t] = pm.get_name(plugin) or repr(plugin)
    return pm


def source_types() -> list[str]:
    return sorted({t for types in plugin_manager().hook.mtv_gitops_source_types() for t in types})


def connect(
    provider_type: str,
    url: str,
    secret: dict[str, str],
    settings: dict[str, Any],
    hosts: dict[str, dict[str, Any]] | None = None,
) -> SourceConnection:
    """A connection from whichever plugin answers for ``provider_type``."""
    conn = plugin_manager().hook.mtv_gitops_connect(
        provider_type=provider_type, url=url, secret=secret, settings=settings, hosts=hosts or {}
    )
    if conn is None:
        known = ", ".join(source_types()) or "none"
        raise SourceError(
            f"no source plugin for provider type {provider_type!r} (installed: {known})"
        )
    return conn
