"""The kubevirt target: a real cluster through the official kubernetes client.

What it makes, in the plan's target namespace, every object labelled with the plan, the
Migration and the VM id (``plan``, ``migration``, ``vmID``) so it can be found and cleaned up:

- the Namespace, one PVC per disk (``kubevirt_manifests.disk_claims``) and the kubevirt.io/v1
  VirtualMachine (``kubevirt_manifests.vm_manifest``);
- per disk, a batch/v1 Job that runs this project's image with ``mtv-gitops transfer`` and the
  PVC mounted (``/data/disk.img`` on a Filesystem PVC, the block device ``/dev/disk0`` on a
  Block one), and a Secret beside it with the source Provider's credentials (a pod can only
  read Secrets of its own namespace), handed to the container as environment variables
  through ``secretKeyRef``: the Job spec holds no secret value.

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
checkpoints) and goes when the VM is created (``release_disk``), after a cold copy at once.

Requests go through ``ApiClient`` as JSON, one code path for core, batch and kubevirt.io
resources (the manifests are dicts already). Label selectors are sent and also checked here,
so a server that ignores them (a test emulator) cannot widen a delete.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from reconciler import __version__
from reconciler.secrets.resolver import SecretError, env_name, secret_keys
from reconciler.targets.base import (
    CopyOutcome,
    CopyRequest,
    DiskClaim,
    DiskLost,
    SourceRef,
    TargetError,
)
from reconciler.targets.schema import check_manifest
from reconciler.transfer import report
from reconciler.transfer.engine import CopyProgress, DigestMismatch, TransferCanceled

MIB = 1024 * 1024
DEFAULT_IMAGE = f"quay.io/mtv-gitops/mtv-gitops:{__version__}"
IMAGE_ENV = "MTV_GITOPS_TRANSFER_IMAGE"
CONTAINER = "transfer"
DATA_DIR, FS_IMAGE = "/data", "/data/disk.img"
BLOCK_DEVICE = "/dev/disk0"
CKPT_DIR = "/checkpoints"
TERMINATION_LOG = "/dev/termination-log"
QEMU_UID = 107  # KubeVirt's qemu user: the image it boots must be readable by it
DELETE_WAIT_SECONDS = 120.0
RESULT_RERUNS = 2  # a Job that succeeded but whose outcome is lost is run again this often
ROUND_ANNOTATION = "mtv-gitops/round"  # the warm round a transfer Job copies (0: whole disk)
SNAPSHOT_ANNOTATION = "mtv-gitops/snapshot"  # the snapshot it reads ("" for a cold copy)

VM_PATH = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachines"
PVC_PATH = "/api/v1/namespaces/{ns}/persistentvolumeclaims"
JOB_PATH = "/apis/batch/v1/namespaces/{ns}/jobs"
SECRET_PATH = "/api/v1/namespaces/{ns}/secrets"
POD_PATH = "/api/v1/namespaces/{ns}/pods"
NS_PATH = "/api/v1/namespaces"
SC_PATH = "/apis/storage.k8s.io/v1/storageclasses"


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


def _matches(obj: dict[str, Any], labels: dict[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _terminating(obj: dict[str, Any] | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


class KubeApi:
    """JSON requests through the kubernetes client; failures become TargetErrors that say
    which cluster and what to do."""

    def __init__(self, api_client: k8s.ApiClient, where: str) -> None:
        self.api_client = api_client
        self.where = where

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        headers = {"Accept": "*/*" if raw else "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*request, _request_timeout=(10, 60))
            response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise TargetError(f"cannot reach the cluster at {self.where}: {exc}") from None
        except ApiException as exc:  # TLS failures arrive here with status 0
            raise self._error(method, path, exc.status, exc.reason or "") from None
        if not 200 <= response.status < 300:
            raise _HttpError(
                response.status, self._error(method, path, response.status, _why(response.data))
            )
        if raw:
            return response.data.decode(errors="replace")
        return json.loads(response.data) if response.data else None

    def _error(self, method: str, path: str, status: int, why: str) -> TargetError:
        if status == 401:
            return TargetError(
                f"the cluster at {self.where} refused the token (401 Unauthorized): put a valid "
                "service account token in the destination Provider's secret"
            )
        if status == 403:
            return TargetError(
                f"the cluster at {self.where} forbids {method} {path} (403): grant the "
                f"reconciler's service account that permission; {why}"
            )
        if status == 0:
            return TargetError(f"cannot reach the cluster at {self.where}: {why}")
        return TargetError(f"{method} {path} on {self.where} failed ({status}): {why}")

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self._call("GET", path)
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise exc.error from None

    def list(self, path: str, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", _selector(labels))] if labels else None
        try:
            items = (self._call("GET", path, query=query) or {}).get("items") or []
        except _HttpError as exc:
            if exc.status == 404:
                return []
            raise exc.error from None
        return [i for i in items if not labels or _matches(i, labels)]

    def create(self, path: str, body: dict[str, Any]) -> bool:
        """True when created, False when it existed already."""
        try:
            self._call("POST", path, body)
        except _HttpError as exc:
            if exc.status == 409:
                return False
            raise exc.error from None
        return True

    def patch(self, path: str, body: dict[str, Any]) -> None:
        try:
            self._call("PATCH", path, body, content_type="application/merge-patch+json")
        except _HttpError as exc:
            raise exc.error from None

    def delete(self, path: str) -> bool:
        """True when something was deleted; dependants (a Job's pods) go in the background."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._call("DELETE", path, body)
        except _HttpError as exc:
            if exc.status == 404:
                return False
            raise exc.error from None
        return True

    def text(self, path: str, query: list[tuple[str, str]]) -> str | None:
        try:
            return self._call("GET", path, query=query, raw=True)
        except (_HttpError, TargetError):
            return None


class _HttpError(Exception):
    def __init__(self, status: int, error: TargetError) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


def _why(data: bytes | None) -> str:
    try:
        doc = json.loads(data or b"")
    except ValueError:
        return (data or b"").decode(errors="replace")[:300]
    return str(doc.get("message") or doc.get("reason") or "") if isinstance(doc, dict) else ""


class KubevirtTarget:
    """A KubeVirt cluster; see the module docstring for what it creates and how it copies."""

    def __init__(
        self, api_client: k8s.ApiClient, host: str, settings: JobSettings | None = None
    ) -> None:
        self.host = host.rstrip("/")
        self.api = KubeApi(api_client, self.host)
        self.settings = settings or JobSettings()

    @classmethod
    def from_url(
        cls,
        url: str,
        token: str,
        cacert: str = "",
        insecure: bool = False,
        settings: JobSettings | None = None,
    ) -> KubevirtTarget:
        """The API server at ``url`` with a service account ``token``."""
        cfg = k8s.Configuration()
        cfg.host = url.rstrip("/")
        cfg.api_key = {"BearerToken": token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        if cacert:
            with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as f:
                f.write(cacert)
            cfg.ssl_ca_cert = f.name
        if insecure:
            cfg.verify_ssl = False
        return cls(k8s.ApiClient(cfg), cfg.host, settings)

    @classmethod
    def in_cluster(cls, settings: JobSettings | None = None) -> KubevirtTarget:
        """The cluster this process runs in, with its pod's service account."""
        from kubernetes.config import ConfigException, load_incluster_config

        cfg = k8s.Configuration()
        try:
            load_incluster_config(client_configuration=cfg)
        except ConfigException as exc:
            raise TargetError(f"cannot use the cluster this pod runs in: {exc}") from None
        return cls(k8s.ApiClient(cfg), cfg.host, settings)

    def describe(self) -> str:
        return f"KubeVirt cluster at {self.host}"

    def pod_image(self, namespace: str, pod: str) -> str | None:
        """The image of a pod's first container: the reconciler's own, which its transfer
        Jobs run too unless the Provider or $MTV_GITOPS_TRANSFER_IMAGE names another."""
        obj = self.api.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")
        containers = ((obj or {}).get("spec") or {}).get("containers") or []
        return containers[0].get("image") if containers else None

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Provider's Secret as its keys and values (None when absent): how an in-cluster
        reconciler gets credentials. Errors never carry a value."""
        try:
            obj = self.api.get(f"{SECRET_PATH.format(ns=namespace)}/{name}")
        except TargetError as exc:
            raise SecretError(f"secret {namespace}/{name}: {exc}") from None
        if obj is None:
            return None
        values: dict[str, str] = {}
        for key, raw in (obj.get("data") or {}).items():
            try:
                values[key] = base64.b64decode(raw, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # not text: no credential key of ours is binary
        values.update(obj.get("stringData") or {})
        return values

    # -- observing ---------------------------------------------------------------------------

    def vm_names(self, namespace: str) -> set[str]:
        return {
            vm["metadata"]["name"]
            for vm in self.api.list(VM_PATH.format(ns=namespace))
            if not _terminating(vm)
        }

    def free_bytes(self, namespace: str) -> int | None:
        return None  # quotas and provisioners decide; a full PVC is reported by its Job

    def storage_classes(self) -> tuple[dict[str, str], str]:
        provisioners, default = {}, ""
        for sc in self.api.list(SC_PATH):
            meta = sc.get("metadata") or {}
            provisioners[meta.get("name", "")] = sc.get("provisioner", "")
            ann = meta.get("annotations") or {}
            if ann.get("storageclass.kubernetes.io/is-default-class") == "true":
                default = meta.get("name", "")
        return provisioners, default

    def get_vm(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get(f"{VM_PATH.format(ns=namespace)}/{name}")

    def locate(self, namespace: str, name: str) -> dict[str, str]:
        return {
            "virtualmachine": f"{self.host}{VM_PATH.format(ns=namespace)}/{name}",
            "pvcs": f"{self.host}{PVC_PATH.format(ns=namespace)}",
        }

    # -- namespace, PVCs, VirtualMachine -------------------------------------------------------

    def ensure_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        if self.api.get(f"{NS_PATH}/{namespace}") is None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            body["metadata"]["labels"] = dict(labels)
            self.api.create(NS_PATH, body)

    def _pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.api.get(f"{PVC_PATH.format(ns=namespace)}/{name}")

    def disk_exists(self, claim: DiskClaim) -> bool:
        pvc = self._pvc(claim.namespace, claim.name)
        return pvc is not None and not _terminating(pvc)

    def ensure_disk(self, claim: DiskClaim) -> None:
        check_manifest(claim.manifest)
        self._ensure_pvc(claim.namespace, claim.name, claim.manifest)

    def _ensure_pvc(self, namespace: str, name: str, manifest: dict[str, Any]) -> None:
        """Create the PVC; one still being deleted (its pods hold it) is waited for first."""
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while True:
            pvc = self._pvc(namespace, name)
            if pvc is None:
                if self.api.create(PVC_PATH.format(ns=namespace), manifest):
                    return
                continue  # made meanwhile: look again
            if not _terminating(pvc):
                return
            if time.monotonic() > deadline:
                raise TargetError(
                    f"PVC {namespace}/{name} is still being deleted after "
                    f"{DELETE_WAIT_SECONDS:.0f}s; a pod may still use it: delete that pod"
                )
            time.sleep(1.0)

    def release_disk(self, claim: DiskClaim) -> None:
        """Delete the checkpoint PVC of a Block disk: no round comes any more.  Not at the
        final round's end: a reconciler killed before recording that round runs it again, and
        the round needs the checkpoints."""
        self.api.delete(f"{PVC_PATH.format(ns=claim.namespace)}/{checkpoint_name(claim)}")

    def delete_disk(self, claim: DiskClaim) -> None:
        ns = claim.namespace
        self._delete_transfer(ns, transfer_name(claim), wait=False)
        self.api.delete(f"{PVC_PATH.format(ns=ns)}/{checkpoint_name(claim)}")
        self.api.delete(f"{PVC_PATH.format(ns=ns)}/{claim.name}")

    def ensure_vm(self, manifest: dict[str, Any]) -> None:
        check_manifest(manifest)
        meta = manifest["metadata"]
        path = VM_PATH.format(ns=meta["namespace"])
        if not self.api.create(path, manifest):
            self.api.patch(f"{path}/{meta['name']}", manifest)

    def delete_vm(self, namespace: str, name: str) -> None:
        self.api.delete(f"{VM_PATH.format(ns=namespace)}/{name}")

    def cleanup(self, namespace: str, labels: dict[str, str]) -> int:
        """Delete the Jobs, Secrets, PVCs and VirtualMachines of the namespace that carry all
        ``labels`` (an empty selector deletes nothing)."""
        if not labels:
            return 0
        removed = 0
        secrets = SECRET_PATH.format(ns=namespace)
        for template in (JOB_PATH, PVC_PATH, VM_PATH):
            path = template.format(ns=namespace)
            for obj in self.api.list(path, labels):
                name = obj["metadata"]["name"]
                # Secrets are never listed (that would let the reconciler read every Secret):
                # a transfer's credentials Secret is named after its Job, i.e. after its PVC
                if template == JOB_PATH:
                    removed += self.api.delete(f"{secrets}/{name}")
                elif template == PVC_PATH:
                    removed += self.api.delete(f"{secrets}/{short_name(f'{name}-xfer')}")
                removed += self.api.delete(f"{path}/{name}")
        return removed

    # -- the transfer Job ----------------------------------------------------------------------

    def copy_disk(self, request: CopyRequest) -> CopyOutcome:
        """Run (or find again) the disk's transfer Job and watch it to its end.

        A warm migration's round (``request.round``) or its round 0 (``request.snapshot_id``)
        is a Job of its own; the Block disk's checkpoint PVC is kept until the final round."""
        if request.source is None:
            raise TargetError(
                f"{self.describe()} copies through transfer Jobs and needs the source Provider"
            )
        if (request.round or request.change_id) and not request.snapshot_id:
            raise TargetError(
                f"warm copy of disk {request.disk_key} onto {self.describe()}: the transfer Job "
                "reads the source at a snapshot, and the request names none"
            )
        if request.round and not request.since:
            raise TargetError(
                f"precopy round {request.round} of disk {request.disk_key}: the transfer Job "
                "needs the change id the changed areas are counted from, and the request has none"
            )
        claim = request.claim
        ns, name = claim.namespace, transfer_name(claim)
        job_path = f"{JOB_PATH.format(ns=ns)}/{name}"
        job = self.api.get(job_path)
        if job is not None and (_terminating(job) or not _same_copy(job, request)):
            # an earlier Migration's, or another round's: start anew
            self._delete_transfer(ns, name, wait=True)
            job = None
        reruns = 0
        done = 0
        while True:
            if request.halt.is_set():
                self._delete_transfer(ns, name, wait=False)
                raise TransferCanceled(request.disk_id, done)
            if job is None:
                job = self._start(request, name)
            if not self.disk_exists(claim):
                self._delete_transfer(ns, name, wait=False)
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
                    self._delete_transfer(ns, name, wait=True)
                    job = None
                    continue
                self._delete_transfer(ns, name, wait=False)
                if not _warm(request):  # a warm disk's go when its VM is created
                    self.release_disk(claim)
                return CopyOutcome(outcome.result, attempts)
            if _condition(job, "Failed"):
                raise self._failure(request, job, attempts - 1)
            progress = self._progress(ns, job)
            if progress is not None:
                done = progress.bytes_done
                request.on_progress(progress)
            request.halt.wait(self.settings.poll_seconds)

    def _start(self, request: CopyRequest, name: str) -> dict[str, Any]:
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
        if _volume_mode(claim) == "Block":
            ckpt = checkpoint_pvc(claim, labels)
            check_manifest(ckpt)
            self._ensure_pvc(ns, ckpt["metadata"]["name"], ckpt)
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

    def _delete_transfer(self, ns: str, name: str, wait: bool) -> None:
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
                f"PVC {ns}/{claim.name} ({requested} requested, {_volume_mode(claim)} mode) is "
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


def _warm(request: CopyRequest) -> bool:
    """Whether the copy is part of a warm migration (more rounds may follow)."""
    return bool(request.round or request.change_id or request.snapshot_id)


def _same_copy(job: dict[str, Any], request: CopyRequest) -> bool:
    """Whether an existing Job is this request's: the same Migration, round and snapshot (a
    Job made before rounds were annotated counts as round 0 without a snapshot)."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        labels.get("migration") == request.labels.get("migration", "")
        and annotations.get(ROUND_ANNOTATION, "0") == str(request.round)
        and annotations.get(SNAPSHOT_ANNOTATION, "") == request.snapshot_id
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


def _volume_mode(claim: DiskClaim) -> str:
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


def transfer_command(request: CopyRequest, output: str, checkpoints: str) -> list[str]:
    """``mtv-gitops transfer ...`` for one disk: everything but the credentials."""
    src = request.source
    assert src is not None
    argv = ["mtv-gitops", "transfer", "--provider", src.key, "--type", src.type]
    if src.url:
        argv += ["--url", src.url]
    for key, value in sorted(src.settings.items()):
        argv += ["--setting", f"{key}={value}"]
    if src.secret_ref is not None and src.secret:
        argv += ["--secret", "/".join(src.secret_ref)]
    for host in src.hosts:
        argv += ["--host", f"{host.id}={host.address}"]
        if host.secret_ref is not None:
            argv += ["--host-secret", f"{host.id}={'/'.join(host.secret_ref)}"]
    argv += [
        "--vm",
        request.vm_id,
        "--disk",
        request.disk_key,
        "--output",
        output,
        "--checkpoints",
        checkpoints,
        "--streams",
        str(request.streams),
        "--chunk-mib",
        str(max(1, request.chunk_size // MIB)),
        "--termination-log",
        TERMINATION_LOG,
    ]
    if request.snapshot_id:
        argv += ["--snapshot", request.snapshot_id]
    if request.round:
        argv += ["--round", str(request.round), "--since", request.since]
    if request.change_id:
        argv += ["--change-id", request.change_id]
    if not request.verify:
        argv.append("--no-verify")
    if request.max_bytes_per_second:
        argv += ["--max-mibps", f"{request.max_bytes_per_second / MIB:g}"]
    return argv


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


def transfer_job(
    request: CopyRequest, name: str, settings: JobSettings, labels: dict[str, str]
) -> dict[str, Any]:
    """The batch/v1 Job that copies one disk into its PVC."""
    claim = request.claim
    block = _volume_mode(claim) == "Block"
    volumes: list[dict[str, Any]] = [
        {"name": "disk", "persistentVolumeClaim": {"claimName": claim.name}}
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
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
        ROUND_ANNOTATION: str(request.round),
    }
    if request.snapshot_id:
        annotations[SNAPSHOT_ANNOTATION] = request.snapshot_id
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
            "template": {
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
            },
        },
    }
