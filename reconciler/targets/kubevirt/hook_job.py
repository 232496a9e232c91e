"""A PreHook or PostHook on a cluster: a Job in the plan's target namespace, as MTV runs it.

The Job is named as Forklift names its hook Jobs (``<plan>-<vm id>-<step>-<5 chars>``, here the
5 characters come from the Migration, the VM and the step, so a killed pass finds its Job by
name as well as by labels).  It runs the Hook's image with the Hook's service account; the
playbook, ``plan.yml`` and ``workload.yml`` come from a ConfigMap mounted at ``/tmp/hook``; a
playbook runs as Forklift's hook-runner runs it (``ansible-runner run /tmp/runner -p
/tmp/hook/playbook.yml``), an image without one runs as it is.  ``deadline`` is the pod's and
the Job's ``activeDeadlineSeconds``; ``backoffLimit`` is 1, as in Forklift.  The Job and its
ConfigMap stay after it ends (its log is the record) and go with the plan's cleanup.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from reconciler.hooks.local import MOUNT, RUNNER_COMMAND
from reconciler.hooks.model import HookOutcome, HookRun, tail
from reconciler.targets.kubevirt.api import (
    CONFIGMAP_PATH,
    JOB_PATH,
    POD_PATH,
    KubeApi,
    ensure_created,
    terminating,
)
from reconciler.targets.schema import check_manifest

CONTAINER = "hook"
COMPONENT = "hook"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def hook_job_name(run: HookRun) -> str:
    """``<plan>-<vm id>-<step>-<5 chars>``, lower-cased and cut to a DNS-1123 label."""
    digest = hashlib.sha256(f"{run.migration}/{run.vm_id}/{run.step}".encode()).digest()
    suffix = "".join(_ALPHABET[b % 36] for b in digest[:5])
    stem = re.sub(r"[^a-z0-9-]+", "-", f"{run.plan}-{run.vm_id}-{run.step}".lower()).strip("-")
    return f"{stem[: 63 - 6].rstrip('-')}-{suffix}"


def hook_labels(run: HookRun) -> dict[str, str]:
    return {**run.labels, "app.kubernetes.io/component": COMPONENT}


def config_map(run: HookRun, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": run.namespace, "labels": hook_labels(run)},
        "data": {
            "playbook.yml": run.hook.playbook,
            "plan.yml": run.plan_yml,
            "workload.yml": run.workload_yml,
        },
    }


def hook_job(run: HookRun, name: str) -> dict[str, Any]:
    """The batch/v1 Job of one hook run (Forklift's pod template)."""
    labels = hook_labels(run)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": run.hook.image,
        "volumeMounts": [{"name": "hook", "mountPath": MOUNT}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "150Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
    }
    if run.hook.playbook:
        container["command"] = [*RUNNER_COMMAND, f"{MOUNT}/playbook.yml"]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "hook", "configMap": {"name": name}}],
    }
    if run.service_account:
        pod["serviceAccountName"] = run.service_account
    spec: dict[str, Any] = {
        "backoffLimit": 1,
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if run.hook.deadline > 0:
        pod["activeDeadlineSeconds"] = run.hook.deadline
        spec["activeDeadlineSeconds"] = run.hook.deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": run.namespace, "labels": labels},
        "spec": spec,
    }


class HookJobs:
    """The hook Jobs of one cluster."""

    def __init__(self, api: KubeApi, poll_seconds: float = 1.0) -> None:
        self.api = api
        self.poll_seconds = poll_seconds

    def run(self, run: HookRun) -> HookOutcome:
        """Start the hook's Job (or find the one a killed pass started) and follow it to its
        end; on shutdown it is left running and followed again by the next pass."""
        ns, name = run.namespace, hook_job_name(run)
        jobs = JOB_PATH.format(ns=ns)
        how = f"Job {ns}/{name}"
        job = self.api.get(f"{jobs}/{name}")
        while True:
            if job is None or terminating(job):
                self._start(run, name)
            job = self.api.get(f"{jobs}/{name}")
            if job is None:
                continue  # deleted by hand: made again
            status = job.get("status") or {}
            if _condition(job, "Complete") or int(status.get("succeeded") or 0) > 0:
                return HookOutcome(True, how, "", self._log(ns, name))
            failed = _condition(job, "Failed")
            if failed is not None:
                return HookOutcome(False, how, self._why(run, failed), self._log(ns, name))
            if run.halt.wait(self.poll_seconds):
                return HookOutcome(False, how, "left running; followed next pass", halted=True)

    def _start(self, run: HookRun, name: str) -> None:
        ns = run.namespace
        cm, job = config_map(run, name), hook_job(run, name)
        check_manifest(cm)
        check_manifest(job)
        ensure_created(self.api, CONFIGMAP_PATH.format(ns=ns), name, cm)
        ensure_created(self.api, JOB_PATH.format(ns=ns), name, job)

    def _why(self, run: HookRun, failed: dict[str, Any]) -> str:
        reason = failed.get("reason") or "Failed"
        if reason == "DeadlineExceeded":
            return f"exceeded its deadline of {run.hook.deadline} s and was stopped"
        if reason == "BackoffLimitExceeded":
            return "its pod failed twice (backoffLimit 1)"
        return f"{reason}: {failed.get('message', '')}".rstrip(": ")

    def _log(self, ns: str, name: str) -> tuple[str, ...]:
        """The last lines of the newest pod's log."""
        pods = self.api.list(POD_PATH.format(ns=ns), {"job-name": name})
        if not pods:
            return ()
        pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))
        pod = pods[-1]["metadata"]["name"]
        text = self.api.text(
            f"{POD_PATH.format(ns=ns)}/{pod}/log", [("container", CONTAINER), ("tailLines", "20")]
        )
        return tail(text or "")


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None
