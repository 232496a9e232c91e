"""The oVirt / RHV source plugin: what mtv-gitops knows of the provider type so far.

Forklift's oVirt rules validate VMs (``rules/ovirt/``); connecting to an engine is not built
yet, so :func:`mtv_gitops_connect` says so instead of leaving the type unknown.  The SDK
(ovirt-engine-sdk-python) will come with the ``ovirt`` extra, imported lazily as vSphere's is.
"""

from __future__ import annotations

from typing import Any

from plugins import bundled
from reconciler.hookspecs import hookimpl
from reconciler.sources import Capabilities, Rules, SourceError

PROVIDER_TYPE = "ovirt"


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """Provider ``spec.type: ovirt``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's oVirt rules, in ``rules/ovirt/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.ovirt", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Cold only until the source is built (MTV runs oVirt warm through its snapshots)."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(warm=False, inflight_per_host=False, guest_conversion=False, label="oVirt")


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """The MTV oVirt Secret has the shared keys only (user, password, url, cacert ...)."""
    return [] if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_connect(
    provider_type: str, url: str, secret: dict[str, str], settings: dict[str, Any]
) -> None:
    """Not built yet: say so, naming the Provider's url."""
    if provider_type == PROVIDER_TYPE:
        raise SourceError(
            f"the oVirt source ({url or 'no url'}) cannot connect yet in mtv-gitops: only its "
            "validation rules are installed"
        )
