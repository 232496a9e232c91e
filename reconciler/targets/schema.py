"""Schema checks for what a target is about to hold: real Kubernetes schemas where they exist."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import kubernetes_validate

from reconciler.targets.base import TargetError

K8S_VERSION = "1.30"


@cache
def _vm_validator() -> jsonschema.Draft202012Validator:
    text = resources.files("reconciler.targets").joinpath("schemas/virtualmachine.json").read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def check_manifest(manifest: dict[str, Any]) -> None:
    """Raise TargetError when the manifest would be refused by the API server."""
    kind = manifest.get("kind")
    name = manifest.get("metadata", {}).get("name")
    if kind == "VirtualMachine":
        errors = sorted(_vm_validator().iter_errors(manifest), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = ".".join(str(p) for p in e.absolute_path) or "(root)"
            raise TargetError(f"VirtualMachine {name}: {where}: {e.message}")
        return
    try:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path) or "(root)"
        raise TargetError(f"{kind} {name}: {where}: {exc.message}") from None
