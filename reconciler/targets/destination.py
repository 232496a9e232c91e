"""Which target a destination Provider (type ``openshift``, as in MTV) stands for.

- empty ``url`` and no secret: the cluster the reconciler runs in: in a pod, that cluster
  through the pod's service account; elsewhere (a laptop), the embedded local target;
- a ``url`` and a secret with ``token`` (and optionally ``cacert`` or
  ``insecureSkipVerify: "true"``): that API server, with that service account token.

Anything else is an error that names the Provider and says what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from reconciler.targets.base import Target, TargetError
from reconciler.targets.kubevirt.target import KubevirtTarget
from reconciler.targets.kubevirt.transfer_job import IMAGE_ENV, JobSettings

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def in_cluster(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a pod (the variables and token Kubernetes gives a pod)."""
    env = os.environ if environ is None else environ
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN.exists()


def destination_target(
    provider: str,
    url: str,
    secret_ref: str | None,
    secret: Mapping[str, str],
    settings: Mapping[str, str],
    local: Target,
    environ: Mapping[str, str] | None = None,
) -> Target:
    """The target for destination Provider ``provider`` (``ns/name``, for messages);
    ``secret`` holds the values of its ``spec.secret`` (``secret_ref``), resolved already."""
    env = os.environ if environ is None else environ
    job_settings = JobSettings.from_settings(dict(settings), dict(env))
    url = url.strip()
    if not url:
        if secret_ref:
            raise TargetError(
                f"destination Provider {provider} has a secret ({secret_ref}) but no url: give "
                "the API server's url (https://api.<cluster>:6443), or drop spec.secret for the "
                "cluster the reconciler runs in"
            )
        if in_cluster(env):
            target = KubevirtTarget.in_cluster(job_settings)
            _run_own_image(target, settings, env)
            return target
        return local
    if not secret_ref:
        raise TargetError(
            f"destination Provider {provider} has a url but no spec.secret: give it a secret "
            "with a service account 'token' (and 'cacert' or insecureSkipVerify) for that cluster"
        )
    token = secret.get("token", "").strip()
    if not token:
        raise TargetError(
            f"destination Provider {provider}: its secret {secret_ref} has no 'token': put a "
            "service account token of the target cluster there (`kubectl create token SA`)"
        )
    insecure = secret.get("insecureSkipVerify", "").strip().lower() == "true"
    return KubevirtTarget.from_url(
        url,
        token,
        secret.get("cacert", ""),
        insecure=insecure,
        settings=job_settings,
        who=f"destination Provider {provider}",
    )


def _run_own_image(
    target: KubevirtTarget, settings: Mapping[str, str], env: Mapping[str, str]
) -> None:
    """In a pod, transfer Jobs run the reconciler's own image unless one is named: the
    image deploy/ was given (kustomize ``images:``) is then the only one to set."""
    if settings.get("transferImage") or env.get(IMAGE_ENV):
        return
    ns, pod = env.get("POD_NAMESPACE", ""), env.get("POD_NAME", "")
    if not (ns and pod):
        return
    try:
        image = target.pod_image(ns, pod)
    except TargetError:
        return  # the default image stays; the Jobs say so if it cannot be pulled
    if image:
        target.settings = replace(target.settings, image=image)
