"""``plan.yml`` and ``workload.yml``: what a hook's playbook reads, as Forklift writes them.

Forklift marshals the Plan's spec and the inventory's Workload with Go's ``gopkg.in/yaml.v2``,
which keys fields by their Go names lower-cased and nests embedded structs under their
lower-cased type names: the Plan's target namespace is ``targetnamespace``, a VM's name is
``vm.vm1.vm0.name``, a vSphere VM's address ``vm.ipaddress``.  ``plan.yml`` is the spec only:
a playbook written for MTV has no ``plan.metadata``.  The same shapes here let such playbooks
run unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML

# the fields of Forklift's inventory Resource (``VM0``) and of its ``VM1`` detail level; every
# other field of the VM document sits on the VM itself
_VM0 = ("id", "parent", "path", "revision", "name", "selfLink")
_VM1 = ("revisionValidated", "isTemplate", "powerState", "networks", "disks", "concerns")


def _ref(ref: Any) -> dict[str, Any]:
    """A ``core.ObjectReference`` as yaml.v2 writes it (every field, empty ones too)."""
    return {
        "kind": "",
        "namespace": (getattr(ref, "namespace", None) or "") if ref is not None else "",
        "name": getattr(ref, "name", "") if ref is not None else "",
        "uid": "",
        "apiversion": "",
        "resourceversion": "",
        "fieldpath": "",
    }


def plan_document(spec: Any) -> dict[str, Any]:
    """The Plan's spec (a :class:`reconciler.manifests.models.PlanSpec`) in Forklift's
    ``plan.yml`` shape."""
    return {
        "description": spec.description,
        "targetnamespace": spec.targetNamespace,
        "provider": {
            "source": _ref(spec.provider.source),
            "destination": _ref(spec.provider.destination),
        },
        "transfernetwork": _ref(spec.transferNetwork) if spec.transferNetwork else None,
        "map": {"network": _ref(spec.map.network), "storage": _ref(spec.map.storage)},
        "warm": spec.warm,
        "vms": [
            {
                "ref": {"id": vm.id or "", "name": vm.name or "", "namespace": "", "type": ""},
                "hooks": [{"step": h.step, "hook": _ref(h.hook)} for h in vm.hooks],
            }
            for vm in spec.vms
        ],
        "archived": spec.archived,
    }


def _lower(value: Any) -> Any:
    """JSON field names (Go's json tags) to the lower-cased Go names yaml.v2 writes."""
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lower(v) for v in value]
    return value


def workload_document(
    doc: Mapping[str, Any], provider_type: str = "", provider: str = ""
) -> dict[str, Any]:
    """A VM's Forklift inventory document (the validation input, JSON names) as the Workload
    Forklift's hook-runner gets: ``selflink``, ``vm`` (``vm1.vm0`` nesting) and ``host`` (the
    host with its cluster, where the source has hosts)."""
    vm0 = {k.lower(): _lower(doc[k]) for k in _VM0 if k in doc}
    vm1: dict[str, Any] = {"vm0": vm0}
    vm1.update({k.lower(): _lower(doc[k]) for k in _VM1 if k in doc})
    host = doc.get("host")
    vm1["host"] = host.get("id", "") if isinstance(host, Mapping) else (host or "")
    vm: dict[str, Any] = {"vm1": vm1}
    for key, value in doc.items():
        if key not in _VM0 and key not in _VM1 and key != "host":
            vm[key.lower()] = _lower(value)
    out: dict[str, Any] = {
        "selflink": f"providers/{provider_type}/{provider}/workloads/{doc.get('id', '')}",
        "vm": vm,
    }
    if isinstance(host, Mapping):
        fields = {k: v for k, v in host.items() if k != "cluster"}
        cluster = host.get("cluster")
        out["host"] = {
            "host": _lower(fields),
            "cluster": {
                "cluster": _lower(cluster) if isinstance(cluster, Mapping) else {},
                "datacenter": None,
            },
        }
    else:
        out["host"] = None
    return out


def dump(document: Mapping[str, Any]) -> str:
    """Block-style YAML in the document's own key order, as yaml.v2 writes a struct."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[attr-defined]
    out = io.StringIO()
    yaml.dump(dict(document), out)
    return out.getvalue()
