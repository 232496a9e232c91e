"""A VM's conversion Job on the kubevirt target: virt-v2v in place over its PVCs.

One batch/v1 Job per VM, ``<plan>-<vm>-convert`` (Forklift's naming spirit), in the target
namespace, runs this project's image with ``mtv-gitops convert-guest`` and every PVC of the VM
attached (``/disks/<n>/disk.img`` on a Filesystem PVC, the device ``/dev/disk<n>`` on a Block
one).  It asks for ``devices.kubevirt.io/kvm`` (KubeVirt's device plugin) when a node offers
it; otherwise the appliance runs in software mode, several times slower, and status says so.
The outcome comes back as the pod's termination message (JSON).  A failed Job is kept, so
``kubectl logs`` shows the whole conversion log, until a new Migration.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.convert.v2v import Conversion, ConversionFailed
from reconciler.targets.base import ConvertOutcome, ConvertRequest, TargetError
from reconciler.targets.kubevirt.api import JOB_PATH, POD_PATH, KubeApi
from reconciler.targets.kubevirt.transfer_job import (
    TERMINATION_LOG,
    JobSettings,
    job_container,
    qemu_pod_template,
    short_name,
    volume_mode,
)
from reconciler.targets.schema import check_manifest

CONTAINER = "convert"
KVM_RESOURCE = "devices.kubevirt.io/kvm"
NODES_PATH = "/api/v1/nodes"
EXIT_REFUSED = 4  # mtv-gitops convert-guest: virt-v2v refused the guest


def convert_name(request: ConvertRequest) -> str:
    plan = request.labels.get("plan", "")
    return short_name(
        f"{plan}-{request.guest.name}-convert" if plan else f"{request.guest.name}-convert"
    )


def kvm_offered(api: KubeApi) -> bool:
    """Whether a node offers KubeVirt's /dev/kvm device; False when nodes cannot be read."""
    try:
        nodes = api.list(NODES_PATH)
    except TargetError:
        return False
    return any(
        str((n.get("status") or {}).get("allocatable", {}).get(KVM_RESOURCE, "0")) not in ("0", "")
        for n in nodes
    )


def convert_job(
    request: ConvertRequest, name: str, settings: JobSettings, kvm: bool
) -> dict[str, Any]:
    """The Job that converts the VM's guest on its PVCs."""
    ns = request.claims[0].namespace
    volumes, mounts, devices = [], [], []
    command = ["mtv-gitops", "convert-guest", "--name", request.guest.name]
    command += ["--firmware", request.guest.firmware, "--memory-mib", str(request.guest.memory_mb)]
    command += ["--cpus", str(request.guest.cpus)]
    for i, (claim, disk) in enumerate(zip(request.claims, request.guest.disks, strict=True)):
        vol = f"disk-{i}"
        volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claim.name}})
        if volume_mode(claim) == "Block":
            path = f"/dev/disk{i}"
            devices.append({"name": vol, "devicePath": path})
        else:
            mounts.append({"name": vol, "mountPath": f"/disks/{i}"})
            path = f"/disks/{i}/disk.img"
        command += ["--disk", path, "--bus", disk.bus]
    for nic in request.guest.nics:
        command += ["--nic", f"{nic.mac},{nic.model},{nic.network}"]
    command += ["--termination-log", TERMINATION_LOG]
    resources: dict[str, Any] = {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    if kvm:
        resources["requests"][KVM_RESOURCE] = "1"
        resources["limits"][KVM_RESOURCE] = "1"
    container = job_container(CONTAINER, settings, resources)
    container["command"] = command
    if not kvm:
        container["env"] = [{"name": "MTV_GITOPS_FORCE_TCG", "value": "1"}]
    if mounts:
        container["volumeMounts"] = mounts
    if devices:
        container["volumeDevices"] = devices
    labels = {**request.labels, "app.kubernetes.io/component": "convert"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {"mtv-gitops/appliance": "kvm" if kvm else "software (tcg)"},
        },
        "spec": {
            "backoffLimit": 0,  # virt-v2v gives the same answer twice
            "template": qemu_pod_template(labels, container, volumes),
        },
    }


class ConvertJobs:
    """Conversion Jobs of one cluster."""

    def __init__(self, api: KubeApi, settings: JobSettings) -> None:
        self.api = api
        self.settings = settings

    def convert(self, request: ConvertRequest) -> ConvertOutcome:
        ns = request.claims[0].namespace
        name = convert_name(request)
        path = f"{JOB_PATH.format(ns=ns)}/{name}"
        job = self.api.get(path)
        if job is not None and (job["metadata"].get("labels") or {}).get(
            "migration"
        ) != request.labels.get("migration"):
            self.api.delete(path)  # an earlier Migration's, kept for its log
            job = None
        if job is None:
            job = convert_job(request, name, self.settings, kvm_offered(self.api))
            check_manifest(job)
            self.api.create(JOB_PATH.format(ns=ns), job)
        where = f"`kubectl logs -n {ns} job/{name}`"
        while True:
            if request.halt.is_set():
                self.api.delete(path)
                raise TargetError(f"conversion Job {ns}/{name} stopped; it runs again next pass")
            job = self.api.get(path)
            if job is None:
                raise TargetError(f"conversion Job {ns}/{name} was deleted; push a new Migration")
            conds = {
                c.get("type")
                for c in (job.get("status") or {}).get("conditions") or []
                if c.get("status") == "True"
            }
            if conds & {"Complete", "Failed"}:
                outcome = self._termination(ns, name)
                if "failed" in outcome:
                    raise ConversionFailed(
                        f"{outcome['failed']} (conversion Job {ns}/{name}; {where} has the log)",
                        list(outcome.get("tail") or []),
                    )
                if "Failed" in conds or not outcome:
                    raise TargetError(
                        f"conversion Job {ns}/{name} failed without an outcome; {where}"
                    )
                self.api.delete(path)
                if "skipped" in outcome:
                    return ConvertOutcome(None, skipped=outcome["skipped"])
                return ConvertOutcome(Conversion(**outcome["conversion"]), log=where)
            request.halt.wait(self.settings.poll_seconds)

    def _termination(self, ns: str, job: str) -> dict[str, Any]:
        pods = self.api.list(POD_PATH.format(ns=ns), {"job-name": job})
        pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
        for pod in reversed(pods):
            for cs in (pod.get("status") or {}).get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                if cs.get("name") == CONTAINER and term:
                    for line in reversed((term.get("message") or "").splitlines()):
                        try:
                            return json.loads(line)
                        except ValueError:
                            continue
        return {}
