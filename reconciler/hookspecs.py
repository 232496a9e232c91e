"""Every hook a mtv-gitops plugin may implement, in one place.

Source plugins are found through the entry-point group ``mtv_gitops.sources``; the bundled
sources register exactly like a third-party one would.  The core calls every hook with keyword
arguments, so a spec grows by optional arguments and an implementation names only those it
needs.  Hooks that take ``provider_type`` are asked for one Provider ``spec.type``: a plugin
answers ``None`` for a type that is not its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from reconciler.sources import Capabilities, DemoSource, Requirements, Rules, SourceConnection

PROJECT = "mtv_gitops"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mtv_gitops_source_types() -> list[str]:
    """Return the Provider ``spec.type`` values this plugin answers for (e.g. ``["example"]``).

    Every plugin's list is collected; a type claimed by two plugins is a start-up error, and so
    is ``openshift``, the destination type the core owns.
    """


@hookspec(firstresult=True)
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Where the validation rules of ``provider_type`` live.

    :param provider_type: one of the types this plugin declared.
    :return: a :class:`reconciler.sources.Rules`: the Rego package the rules are written in
        (``io.konveyor.forklift.<name>``; the core queries ``data.<package>.validate``) and the
        folder of the default rules (``validate.rego``, ``rules_version.rego``, ...); ``None``
        when the type is not this plugin's.  A type no plugin gives rules for is not validated.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """What the source of ``provider_type`` can do, for the planner and the scheduler.

    :param provider_type: one of the types this plugin declared.
    :return: a :class:`reconciler.sources.Capabilities` (warm migration; in-flight VMs counted
        per source host; guest conversion needed), or ``None`` when the type is not this
        plugin's.  A type no plugin answers for can do nothing beyond a cold migration.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """The keys of a Provider Secret the source of ``provider_type`` reads.

    The core passes these keys on: from the environment (``MTV_GITOPS_SECRET_<NS>_<NAME>_<KEY>``)
    and into the kubevirt target's transfer Jobs.  Keys every source shares (``user``,
    ``password``, ``url``, ``cacert``, ``insecureSkipVerify``, ``token``) need not be listed.

    :param provider_type: one of the types this plugin declared.
    :return: the key names as in the MTV Secret's ``stringData`` (``["thumbprint"]``), or
        ``None`` when the type is not this plugin's.

    Stops at the first non-None result.
    """


@hookspec(firstresult=True)
def mtv_gitops_requirements(provider_type: str) -> Requirements | None:
    """The optional Python packages the source of ``provider_type`` needs.

    :param provider_type: one of the types this plugin declared.
    :return: a :class:`reconciler.sources.Requirements`: the extra that installs them
        (``pip install 'mtv-gitops[<extra>]'``) and the modules to find; ``None`` when the type
        is not this plugin's or needs nothing beyond the core.  The core says which extra is
        missing (``mtv-gitops lint``, connection errors) instead of failing on an ImportError;
        a plugin module must therefore import its SDK lazily.

    Stops at the first non-None result.
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
    :param url: the Provider's ``spec.url`` (a folder for a file source, an API endpoint
        otherwise).
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


@hookspec(firstresult=True)
def mtv_gitops_demo(name: str, workspace: Path) -> DemoSource | None:
    """The source side of ``mtv-gitops demo``: a provider the demo migrates from.

    :param name: which demo: ``"cold"`` (``mtv-gitops demo``) or ``"warm"``
        (``mtv-gitops demo --warm``).
    :param workspace: the demo's folder; the source keeps its files under it.
    :return: a :class:`reconciler.sources.DemoSource` (not started yet), or ``None`` when this
        plugin has no such demo.  The core seeds the git remote from it, runs the reconciler and
        checks the target's disks against what the source says they hold.

    Stops at the first non-None result.
    """
