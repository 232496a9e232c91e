"""The OpenStack source plugin: what mtv-gitops knows of the provider type so far.

Forklift's OpenStack rules validate VMs (``rules/openstack/``) and the Secret keys of an
OpenStack Provider pass through to transfer Jobs; connecting is not built yet.  openstacksdk
will come with the ``openstack`` extra, imported lazily as vSphere's SDK is.
"""

from __future__ import annotations

from typing import Any

from plugins import bundled
from reconciler.hookspecs import hookimpl
from reconciler.sources import Capabilities, Rules, SourceError

PROVIDER_TYPE = "openstack"
# the keys of an MTV OpenStack Provider Secret (Forklift's pkg/lib/client/openstack)
SECRET_KEYS = [
    "authType",
    "username",
    "userID",
    "domainName",
    "projectName",
    "projectID",
    "regionName",
    "applicationCredentialID",
    "applicationCredentialName",
    "applicationCredentialSecret",
]


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """Provider ``spec.type: openstack``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's OpenStack rules, in ``rules/openstack/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.openstack", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Cold only, as in MTV; Cinder volumes of a KVM guest need no conversion."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(
        warm=False, inflight_per_host=False, guest_conversion=False, label="OpenStack"
    )


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """Keystone's: user or application credentials, domain, project, region (and a token)."""
    return list(SECRET_KEYS) if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_connect(
    provider_type: str, url: str, secret: dict[str, str], settings: dict[str, Any]
) -> None:
    """Not built yet: say so, naming the Provider's url."""
    if provider_type == PROVIDER_TYPE:
        raise SourceError(
            f"the OpenStack source ({url or 'no url'}) cannot connect yet in mtv-gitops: only "
            "its validation rules are installed"
        )
