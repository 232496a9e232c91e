"""A disk's transfer Job on the kubevirt target: built, watched to its end, cleaned up.

Per disk, a batch/v1 Job runs this project's image with ``mtv-gitops transfer`` and the PVC
mounted (``/data/disk.img`` on a Filesystem PVC, the block device ``/dev/disk0`` on a Block
one), and a Secret beside it holds the source Provider's credentials (a pod can only read
Secrets of its own namespace), handed to the container as environment variables through
``secretKeyRef``: the Job spec holds no secret value.

How a Job talks back (see ``reconciler.transfer.report``): progress lines in its log, its
outcome in the pod's termination message; the pod needs no API access at all. Resume: the
transfer command keeps its checkpoints beside ``disk.img`` on a Filesystem PVC, and on a small
companion PVC (``<pvc>-ckpt``, Filesystem, the disk's storage class) for a Block one, so a new
pod (a retry, or a Job made again after the reconciler stopped) continues where the last
stopped. Retries: the Job's ``backoffLimit``; a full disk or a digest mismatch fails the Job at
once through its ``podFailurePolicy`` (exit code ``report.EXIT_FATAL``).

Warm migration: one Job per disk and round, on the same PVC and checkpoints. Round 0 copies the
disk whole at the snapshot, each later round only what changed since the previous one (the Job
asks the source itself, see ``mtv-gitops transfer --round``). A Job carries its round and
snapshot in annotations, so one left from another round is deleted rather than taken for this
one; a Block disk's checkpoint PVC stays between rounds (a round builds on the full copy's
checkpoints) and goes when the VM is created (``release``), after a cold copy at once.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.secrets.resolver import env_name, secret_keys
from reconciler.targets.base import (
    CopyOutcome,
    CopyRequest,
    DiskClaim,
    DiskLost,
    SourceRef,
    TargetError,
)
from reconciler.targets.kubevirt.api import (
    DELETE_WAIT_SECONDS,
    JOB_PATH,
    POD_PATH,
    PVC_PATH,
    SECRET_PATH,
    KubeApi,
    ensure_created,
    terminating,
)
from reconciler.targets.schema import check_manifest
from reconciler.transfer import report
from reconciler.transfer.engine import CopyProgress, DigestMismatch, TransferCanceled
from reconciler.transfer.request import TransferRequest

MIB = 1024 * 1024
DEFAULT_IMAGE = f"quay.io/mtv-gitops/mtv-gitops:{__version__}"
IMAGE_ENV = "MTV_GITOPS_TRANSFER_IMAGE"
CONTAINER = "transfer"
DATA_DIR, FS_IMAGE = "/data", "/data/disk.img"
BLOCK_DEVICE = "/dev/disk0"
CKPT_DIR = "/checkpoints"
TERMINATION_LOG = "/dev/termination-log"
QEMU_UID = 107  # KubeVirt's qemu user: the image it boots must be readable by it
RESULT_RERUNS = 2  # a Job that succeeded but whose outcome is lost is run again this often
ROUND_ANNOTATION = "mtv-gitops/round"  # the warm round a transfer Job copies (0: whole disk)
SNAPSHOT_ANNOTATION = "mtv-gitops/snapshot"  # the snapshot it reads ("" for a cold copy)


@dataclass(frozen=True)
class JobSettings:
    """How transfer Jobs run; from the destination Provider's ``spec.settings``."""

    image: str = DEFAULT_IMAGE
    retries: int = 2  # the Job's backoffLimit: attempts after the first
    poll_seconds: float = 2.0
    pull_policy: str = "IfNotPresent"

    @classmethod
    def from_settings(
        cls, settings: dict[str, str], environ: dict[str, str] | None = None
    ) -> JobSettings:
        """``transferImage`` (else $MTV_GITOPS_TRANSFER_IMAGE, else this version's image),
        ``transferRetries``, ``jobPollSeconds``, ``imagePullPolicy``."""
        env = os.environ if environ is None else environ
        try:
            return cls(
                image=settings.get("transferImage") or env.get(IMAGE_ENV) or DEFAULT_IMAGE,
                retries=max(0, int(settings.get("transferRetries", cls.retries))),
                poll_seconds=max(0.05, float(settings.get("jobPollSeconds", cls.poll_seconds))),
                pull_policy=settings.get("imagePullPolicy", cls.pull_policy),
            )
        except ValueError as exc:
            raise TargetError(
                f"destination Provider settings: {exc}; transferRetries is a whole number, "
                "jobPollSeconds a number of seconds"
            ) from None


def short_name(name: str, limit: int = 63) -> str:
    """A DNS-1123 label: ``name`` when it fits, else cut with a hash of the whole kept."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def transfer_name(claim: DiskClaim) -> str:
    """The Job (and its credentials Secret) that fills ``claim``."""
    return short_name(f"{claim.name}-xfer")


def checkpoint_name(claim: DiskClaim) -> str:
    return short_name(f"{claim.name}-ckpt")


class TransferJobs:
    """The transfer Jobs (and their Secrets and checkpoint PVCs) of one cluster."""

    def __init__(self, api: KubeApi, settings: JobSettings) -> None:
        self.api = api
        self.settings = settings

    def copy(self, request: CopyRequest) -> CopyOutcome:
        """Run (or find again) the disk's transfer Job and watch it to its end."""
        claim = request.claim
        ns, name = claim.namespace, transfer_name(claim)
        job_path = f"{JOB_PATH.format(ns=ns)}/{name}"
        job = self.api.get(job_path)
        if job is not None and (terminating(job) or not _same_copy(job, request)):
            # an earlier Migration's, or another round's: start anew
            self.delete(ns, name, wait=True)
            job = None
        reruns = 0
        done = 0
        while True:
            if request.halt.is_set():
                self.delete(ns, name, wait=False)
                raise TransferCanceled(request.disk_id, done)
            if job is None:
                job = self.start(request, name)
            if not self._pvc_exists(claim):
                self.delete(ns, name, wait=False)
                # its checkpoints describe a disk that is gone: a new PVC starts from nothing
                self.api.delete(f"{PVC_PATH.format(ns=ns)}/{checkpoint_name(claim)}")
                raise DiskLost(f"PVC {ns}/{claim.name} was deleted while its disk was being copied")
            job = self.api.get(job_path)
            if job is None:
                continue  # deleted by hand: made again, it resumes from its checkpoints
            status = job.get("status") or {}
            attempts = int(status.get("failed") or 0) + 1
            if _condition(job, "Complete") or int(status.get("succeeded") or 0) > 0:
                outcome = self._outcome(ns, job)
                if outcome is None or outcome.result is None:
                    if reruns >= RESULT_RERUNS:
                        raise TargetError(
                            f"transfer Job {ns}/{name} succeeded but its pod's termination "
                            "message is gone; delete the Job and push a new Migration"
                        )
                    reruns += 1  # run it again: it ends at once from its checkpoints
                    self.delete(ns, name, wait=True)
                    job = None
                    continue
                self.delete(ns, name, wait=False)
                if not request.copy.warm:  # a warm disk's go when its VM is created
                    self.release(claim)
                return CopyOutcome(outcome.result, attempts)
            if _condition(job, "Failed"):
                raise self._failure(request, job, attempts - 1)
            progress = self._progress(ns, job)
            if progress is not None:
                done = progress.bytes_done
                request.on_progress(progress)
            request.halt.wait(self.settings.poll_seconds)

    def release(self, claim: DiskClaim) -> None:
        """Delete the checkpoint PVC of a Block disk: no round comes any more."""
        self.api.delete(f"{PVC_PATH.format(ns=claim.namespace)}/{checkpoint_name(claim)}")

    def _pvc_exists(self, claim: DiskClaim) -> bool:
        pvc = self.api.get(f"{PVC_PATH.format(ns=claim.namespace)}/{claim.name}")
        return pvc is not None and not terminating(pvc)

    def start(self, request: CopyRequest, name: str) -> dict[str, Any]:
        """Secret, checkpoint PVC (Block disks) and Job, each created unless it exists."""
        claim, ns = request.claim, request.claim.namespace
        labels = {**request.labels, "app.kubernetes.io/component": "transfer"}
        secret = self._secret_manifest(request.source, ns, name, labels)
        if secret is not None:
            check_manifest(secret)
            if not self.api.create(SECRET_PATH.format(ns=ns), secret):  # left by a killed pass
                # replaced rather than patched: the reconciler may write Secrets, never read
                # them, and a patch answers with the whole Secret
                self.api.delete(f"{SECRET_PATH.format(ns=ns)}/{name}")
                self.api.create(SECRET_PATH.format(ns=ns), secret)
        if volume_mode(claim) == "Block":
            ckpt = checkpoint_pvc(claim, labels)
            check_manifest(ckpt)
            ensure_created(self.api, PVC_PATH.format(ns=ns), ckpt["metadata"]["name"], ckpt)
        job = transfer_job(request, name, self.settings, labels)
        check_manifest(job)
        self.api.create(JOB_PATH.format(ns=ns), job)
        return job

    def _secret_manifest(
        self, source: SourceRef | None, ns: str, name: str, labels: dict[str, str]
    ) -> dict[str, Any] | None:
        if source is None:
            return None
        keys = secret_keys()
        data = {k: v for k, v in source.secret.items() if k in keys and source.secret_ref}
        for i, host in enumerate(source.hosts):
            if host.secret_ref is not None:
                data |= {f"host{i}-{k}": v for k, v in host.secret.items() if k in keys}
        if not data:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "type": "Opaque",
            "stringData": data,
        }

    def delete(self, ns: str, name: str, wait: bool) -> None:
        """The Job (its pods in the background) and its credentials Secret."""
        path = f"{JOB_PATH.format(ns=ns)}/{name}"
        self.api.delete(path)
        self.api.delete(f"{SECRET_PATH.format(ns=ns)}/{name}")
        if not wait:
            return
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while self.api.get(path) is not None:
            if time.monotonic() > deadline:
                raise TargetError(f"transfer Job {ns}/{name} is still being deleted; delete it")
            time.sleep(0.5)

    def _pods(self, ns: str, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The Job's pods, oldest first."""
        name = job["metadata"]["name"]
        uid = job["metadata"].get("uid")
        pods = []
        for pod in self.api.list(POD_PATH.format(ns=ns), {"job-name": name}):
            labels = pod["metadata"].get("labels") or {}
            owner = labels.get("batch.kubernetes.io/controller-uid") or labels.get("controller-uid")
            if uid and owner and owner != uid:
                continue  # a pod of an earlier Job of the same name
            pods.append(pod)
        return sorted(
            pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
        )

    def _progress(self, ns: str, job: dict[str, Any]) -> CopyProgress | None:
        running = [
            p for p in self._pods(ns, job) if (p.get("status") or {}).get("phase") == "Running"
        ]
        if not running:
            return None
        pod = running[-1]["metadata"]["name"]
        text = self.api.text(
            f"{POD_PATH.format(ns=ns)}/{pod}/log", [("container", CONTAINER), ("tailLines", "2")]
        )
        return report.parse_progress(text) if text else None

    def _outcome(self, ns: str, job: dict[str, Any]) -> report.Outcome | None:
        for pod in reversed(self._pods(ns, job)):
            terminated = _terminated(pod)
            if terminated is not None and terminated.get("exitCode") == 0:
                return report.parse_outcome(terminated.get("message") or "")
        return None

    def _failure(self, request: CopyRequest, job: dict[str, Any], failed: int) -> Exception:
        """The error a failed Job ends the VM with: the last pod's own message."""
        claim, ns = request.claim, request.claim.namespace
        name = job["metadata"]["name"]
        message, outcome = "", None
        for pod in reversed(self._pods(ns, job)):
            terminated = _terminated(pod)
            if terminated is None:
                continue
            outcome = report.parse_outcome(terminated.get("message") or "")
            if outcome is not None and not outcome.ok:
                message = outcome.message
            else:
                message = (
                    f"container {terminated.get('reason') or 'ended'} with exit code "
                    f"{terminated.get('exitCode')}"
                    + (f": {terminated['message'].strip()}" if terminated.get("message") else "")
                )
            break
        if not message:
            cond = _condition(job, "Failed") or {}
            message = f"{cond.get('reason', 'Failed')}: {cond.get('message', 'no pod left to ask')}"
        if outcome is not None and outcome.reason == report.DISK_FULL:
            requested = (
                claim.manifest.get("spec", {})
                .get("resources", {})
                .get("requests", {})
                .get("storage", "?")
            )
            return TargetError(
                f"PVC {ns}/{claim.name} ({requested} requested, {volume_mode(claim)} mode) is "
                f"full: the disk needs {claim.size} bytes ({claim.size / MIB:.0f} MiB): "
                f"{message}. Give the storage more room (raise target.filesystemOverhead in "
                ".mtv-gitops.yaml, or map to a storage class that provisions what is asked), "
                "then push a new Migration"
            )
        if outcome is not None and outcome.reason == report.DIGEST_MISMATCH:
            return DigestMismatch(f"transfer Job {ns}/{name}: {message}", request.disk_id)
        tries = max(1, failed)
        return TargetError(
            f"transfer Job {ns}/{name} failed after {tries} attempt(s): {message}; `kubectl "
            f"logs -n {ns} job/{name}` has the rest"
        )


def _same_copy(job: dict[str, Any], request: CopyRequest) -> bool:
    """Whether an existing Job is this request's: the same Migration, round and snapshot (a
    Job made before rounds were annotated counts as round 0 without a snapshot)."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get("migration") == request.labels.get("migration", "")
        and annotations.get(ROUND_ANNOTATION, "0") == str(request.copy.round)
        and annotations.get(SNAPSHOT_ANNOTATION, "") == request.copy.snapshot_id
    )


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


def volume_mode(claim: DiskClaim) -> str:
    return claim.manifest.get("spec", {}).get("volumeMode") or "Filesystem"


def checkpoint_pvc(claim: DiskClaim, labels: dict[str, str]) -> dict[str, Any]:
    """The small Filesystem PVC that keeps a Block disk's copy checkpoints (about 64 bytes per
    4 MiB chunk; 64 MiB holds those of a 4 TiB disk)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": "64Mi"}},
    }
    storage_class = claim.manifest.get("spec", {}).get("storageClassName")
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": checkpoint_name(claim),
            "namespace": claim.namespace,
            "labels": labels,
        },
        "spec": spec,
    }


def transfer_request(request: CopyRequest, output: str, checkpoints: str) -> TransferRequest:
    """What the disk's Job is asked: the copy, the source Provider as the pod reaches it
    (credentials by reference only), the PVC's paths in the pod."""
    src = request.source
    assert src is not None
    return TransferRequest(
        provider=src.key,
        type=src.type,
        url=src.url,
        settings=dict(src.settings),
        secret="/".join(src.secret_ref) if src.secret_ref is not None and src.secret else "",
        hosts={host.id: host.address for host in src.hosts},
        host_secrets={
            host.id: "/".join(host.secret_ref) for host in src.hosts if host.secret_ref is not None
        },
        copy=request.copy,
        output=Path(output),
        checkpoints=Path(checkpoints),
        termination_log=Path(TERMINATION_LOG),
    )


def transfer_command(request: CopyRequest, output: str, checkpoints: str) -> list[str]:
    """``mtv-gitops transfer ...`` for one disk: everything but the credentials."""
    return ["mtv-gitops", "transfer", *transfer_request(request, output, checkpoints).to_argv()]


def _env(source: SourceRef | None, secret_name: str) -> list[dict[str, Any]]:
    """The Provider's (and its Hosts') credentials as the environment SecretResolver reads,
    by reference to the transfer's Secret."""
    if source is None:
        return []
    keys = secret_keys()
    refs: list[tuple[tuple[str, str], str, str]] = []  # (secret ref, key, key in our Secret)
    if source.secret_ref is not None:
        refs += [(source.secret_ref, k, k) for k in sorted(source.secret) if k in keys]
    for i, host in enumerate(source.hosts):
        if host.secret_ref is not None:
            refs += [(host.secret_ref, k, f"host{i}-{k}") for k in sorted(host.secret) if k in keys]
    return [
        {
            "name": env_name(*ref, key),
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": ours}},
        }
        for ref, key, ours in refs
    ]


def job_container(name: str, settings: JobSettings, resources: dict[str, Any]) -> dict[str, Any]:
    """A Job's one container: our own image, unprivileged, its failure in the termination log."""
    return {
        "name": name,
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def qemu_pod_template(
    labels: dict[str, str], container: dict[str, Any], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The pod of a Job that writes VM disks: as KubeVirt's qemu user, so the VM can read them."""
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": QEMU_UID,
                "runAsGroup": QEMU_UID,
                "fsGroup": QEMU_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": volumes,
        },
    }


def transfer_job(
    request: CopyRequest, name: str, settings: JobSettings, labels: dict[str, str]
) -> dict[str, Any]:
    """The batch/v1 Job that copies one disk into its PVC."""
    claim = request.claim
    block = volume_mode(claim) == "Block"
    volumes: list[dict[str, Any]] = [
        {"name": "disk", "persistentVolumeClaim": {"claimName": claim.name}}
    ]
    container = job_container(
        CONTAINER,
        settings,
        {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    )
    if block:
        container["volumeDevices"] = [{"name": "disk", "devicePath": BLOCK_DEVICE}]
        container["volumeMounts"] = [{"name": "checkpoints", "mountPath": CKPT_DIR}]
        volumes.append(
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint_name(claim)}}
        )
        output, checkpoints = BLOCK_DEVICE, f"{CKPT_DIR}/transfer.db"
    else:
        container["volumeMounts"] = [{"name": "disk", "mountPath": DATA_DIR}]
        output, checkpoints = FS_IMAGE, f"{DATA_DIR}/.mtv-gitops-transfer.db"
    container["command"] = transfer_command(request, output, checkpoints)
    env = _env(request.source, name)
    if env:
        container["env"] = env
    annotations = {
        "mtv-gitops/pvc": claim.name,
        "mtv-gitops/disk-id": request.disk_id,
        ROUND_ANNOTATION: str(request.copy.round),
    }
    if request.copy.snapshot_id:
        annotations[SNAPSHOT_ANNOTATION] = request.copy.snapshot_id
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": claim.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": settings.retries,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [report.EXIT_FATAL],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": qemu_pod_template(labels, container, volumes),
        },
    }
