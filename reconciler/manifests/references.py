"""Cross-reference checks: a Plan's providers, maps and hooks exist; a Migration's plan exists."""

from __future__ import annotations

from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired, Manifest, dotted_path, locate
from reconciler.manifests.models import ObjectRef


def check_references(desired: Desired) -> list[ManifestError]:
    """Every dangling or mismatched reference, attributed to the object that holds it."""
    errors: list[ManifestError] = []
    for host in desired.of("Host").values():
        _need(desired, host, "Provider", host.spec.provider, ("spec", "provider"), errors)
    for kind in ("NetworkMap", "StorageMap"):
        for m in desired.of(kind).values():
            _providers(desired, m, m.spec.provider, errors)
    for plan in desired.of("Plan").values():
        spec = plan.spec
        _providers(desired, plan, spec.provider, errors)
        for field, kind in (("network", "NetworkMap"), ("storage", "StorageMap")):
            ref = getattr(spec.map, field)
            target = _need(desired, plan, kind, ref, ("spec", "map", field), errors)
            if target is not None:
                _same_providers(plan, target, field, errors)
        for i, vm in enumerate(spec.vms):
            for j, h in enumerate(vm.hooks):
                path = ("spec", "vms", i, "hooks", j, "hook")
                _need(desired, plan, "Hook", h.hook, path, errors)
    for mig in desired.of("Migration").values():
        _need(desired, mig, "Plan", mig.spec.plan, ("spec", "plan"), errors)
    return errors


def resolve(ref: ObjectRef, referrer: Manifest) -> tuple[str, str]:
    """(namespace, name) of a reference; no namespace means the referrer's own."""
    return (ref.namespace or referrer.namespace, ref.name)


def _need(
    desired: Desired,
    referrer: Manifest,
    kind: str,
    ref: ObjectRef,
    path: tuple,
    errors: list[ManifestError],
) -> Manifest | None:
    ns, name = resolve(ref, referrer)
    found = desired.get(kind, ns, name)
    if found is None:
        why = "has errors (see above)" if (kind, ns, name) in desired.broken else "does not exist"
        errors.append(
            ManifestError(
                locate(referrer, *path),
                f"{dotted_path(path)} refers to {kind} {ns}/{name}, which {why}",
                referrer.ref,
            )
        )
    return found


def _providers(desired: Desired, m: Manifest, pair, errors: list[ManifestError]) -> None:
    src = _need(desired, m, "Provider", pair.source, ("spec", "provider", "source"), errors)
    dst = _need(
        desired, m, "Provider", pair.destination, ("spec", "provider", "destination"), errors
    )
    if src is not None and src.spec.type == "openshift":
        errors.append(
            ManifestError(
                locate(m, "spec", "provider", "source"),
                f"source provider {src.namespace}/{src.name} is of type openshift: that is the "
                "destination type; a source is of a type a source plugin answers for",
                m.ref,
            )
        )
    if dst is not None and dst.spec.type != "openshift":
        errors.append(
            ManifestError(
                locate(m, "spec", "provider", "destination"),
                f"destination provider {dst.namespace}/{dst.name} is of type {dst.spec.type}: "
                "the destination must be an openshift provider",
                m.ref,
            )
        )


def _same_providers(plan: Manifest, mp: Manifest, field: str, errors: list[ManifestError]) -> None:
    want = resolve(plan.spec.provider.source, plan)
    got = resolve(mp.spec.provider.source, mp)
    if want != got:
        errors.append(
            ManifestError(
                locate(plan, "spec", "map", field),
                f"{mp.kind} {mp.namespace}/{mp.name} maps provider {got[0]}/{got[1]}, but the "
                f"plan's source provider is {want[0]}/{want[1]}",
                plan.ref,
            )
        )
