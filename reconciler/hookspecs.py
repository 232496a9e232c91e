"""Every hook a mtv-gitops plugin may implement, in one place.

Source plugins are found through the entry-point group ``mtv_gitops.sources``; the bundled
OVA plugin registers exactly like a third-party one would.  Call hooks with keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from reconciler.sources import SourceConnection

PROJECT = "mtv_gitops"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mtv_gitops_source_types() -> list[str]:
    """Return the Provider ``spec.type`` values this plugin answers for (e.g. ``["ova"]``).

    Every plugin's list is collected; a type claimed by two plugins is a start-up error.
    """


@hookspec(firstresult=True)
def mtv_gitops_connect(
    provider_type: str,
    url: str,
    secret: dict[str, str],
    settings: dict[str, Any],
    hosts: dict[str, dict[str, Any]],
) -> SourceConnection | None:
    """Open a connection to a source provider.

    :param provider_type: the Provider's ``spec.type``.
    :param url: the Provider's ``spec.url`` (a folder for ``ova``, an API endpoint otherwise).
    :param secret: the resolved credentials (keys as in the MTV Secret's ``stringData``);
        never log or store them.
    :param settings: the Provider's ``spec.settings``.
    :param hosts: the Provider's Host manifests, ``{host id: {"ipAddress": ..., "secret":
        {...}}}``: hosts whose disks are read over their migration network with their own
        credentials. Plugins without hosts leave the argument out of their signature.
    :return: a :class:`reconciler.sources.SourceConnection`, or ``None`` when the type is not
        this plugin's.  Raise :class:`reconciler.sources.SourceError` when the provider cannot
        be reached or refuses the credentials.

    Stops at the first non-None result.
    """
