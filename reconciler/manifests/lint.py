"""The offline check behind ``mtv-gitops lint``: everything that can be known without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.manifests.config import load_config
from reconciler.manifests.errors import ManifestError
from reconciler.manifests.loader import Desired, load_repo, locate
from reconciler.manifests.references import check_references
from reconciler.plugin_manager import (
    DESTINATION_TYPE,
    load_problems,
    requirements_problem,
    source_types,
)
from reconciler.secrets.resolver import SecretError, SecretResolver, plaintext_secrets


@dataclass
class LintReport:
    desired: Desired
    errors: list[ManifestError] = field(default_factory=list)
    warnings: list[ManifestError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def lint_repo(root: Path, secrets: SecretResolver | None = None) -> LintReport:
    config, config_errors = load_config(root)
    desired = load_repo(root, config)
    report = LintReport(desired, config_errors + desired.errors + check_references(desired))
    known = set(source_types()) | {DESTINATION_TYPE}
    resolver = secrets or SecretResolver()
    resolver.plaintext = plaintext_secrets(desired)
    for p in desired.of("Provider").values():
        if p.spec.type not in known:
            broken = "".join(f"; {why}" for why in load_problems())
            report.errors.append(
                ManifestError(
                    locate(p, "spec", "type"),
                    f"no installed plugin handles provider type {p.spec.type!r} "
                    f"(installed: {', '.join(sorted(known))}){broken}",
                    p.ref,
                )
            )
        elif p.spec.type != DESTINATION_TYPE and requirements_problem(p.spec.type):
            report.warnings.append(
                ManifestError(locate(p, "spec", "type"), requirements_problem(p.spec.type), p.ref)
            )
        if p.spec.secret is not None:
            ns = p.spec.secret.namespace or p.namespace
            try:
                resolver.resolve(ns, p.spec.secret.name)
            except SecretError as exc:
                report.warnings.append(ManifestError(locate(p, "spec", "secret"), str(exc), p.ref))
    report.errors.sort(key=lambda e: e.location)
    return report
