"""``KubevirtTarget``: the Target interface on a KubeVirt cluster (see the package docstring
for what it makes): namespaces, PVCs and VirtualMachines here, disk copies through
``transfer_job``, requests through ``api``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kubernetes import client as k8s

from reconciler.hooks.model import HookOutcome, HookRun
from reconciler.secrets.resolver import SecretError
from reconciler.targets.base import (
    ConvertOutcome,
    ConvertRequest,
    CopyOutcome,
    CopyRequest,
    DiskClaim,
    Gathered,
    TargetError,
)
from reconciler.targets.kubevirt.api import (
    CONFIGMAP_PATH,
    JOB_PATH,
    NS_PATH,
    POD_PATH,
    PVC_PATH,
    SC_PATH,
    SECRET_PATH,
    VM_PATH,
    KubeApi,
    client_from_url,
    ensure_created,
    in_cluster_client,
    terminating,
)
from reconciler.targets.kubevirt.convert_job import ConvertJobs
from reconciler.targets.kubevirt.hook_job import HookJobs
from reconciler.targets.kubevirt.transfer_job import (
    JobSettings,
    TransferJobs,
    checkpoint_name,
    short_name,
    transfer_name,
)
from reconciler.targets.schema import check_manifest


class KubevirtTarget:
    """A KubeVirt cluster; see the package docstring for what it creates and how it copies."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        host: str,
        settings: JobSettings | None = None,
        who: str = "",
    ) -> None:
        self.host = host.rstrip("/")
        self.api = KubeApi(api_client, self.host, who)
        self.settings = settings or JobSettings()
        self.jobs = TransferJobs(self.api, self.settings)
        self.conversions = ConvertJobs(self.api, self.settings)
        self.hooks = HookJobs(self.api, self.settings.poll_seconds)

    @classmethod
    def from_url(
        cls,
        url: str,
        token: str,
        cacert: str = "",
        insecure: bool = False,
        settings: JobSettings | None = None,
        who: str = "",
    ) -> KubevirtTarget:
        """The API server at ``url`` with a service account ``token``; ``who`` names the
        Provider it stands for in messages."""
        return cls(client_from_url(url, token, cacert, insecure), url, settings, who)

    @classmethod
    def in_cluster(cls, settings: JobSettings | None = None) -> KubevirtTarget:
        """The cluster this process runs in, with its pod's service account."""
        api_client = in_cluster_client()
        return cls(api_client, api_client.configuration.host, settings)

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
            if not terminating(vm)
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

    def disk_exists(self, claim: DiskClaim) -> bool:
        pvc = self.api.get(f"{PVC_PATH.format(ns=claim.namespace)}/{claim.name}")
        return pvc is not None and not terminating(pvc)

    def disk_usage(self, claim: DiskClaim) -> int | None:
        """A PVC holds the storage it requested (what quotas and provisioners count), written
        or not."""
        return claim.size if self.disk_exists(claim) else None

    def ensure_disk(self, claim: DiskClaim) -> None:
        """The disk's PVC, made unless it is there. A PVC made anew (a first allocation, or one
        deleted by hand) goes without a checkpoint PVC left from the one before it: its records
        describe a device that is gone, and a Job resuming from them would skip chunks."""
        check_manifest(claim.manifest)
        if not self.disk_exists(claim):
            self.api.delete(f"{PVC_PATH.format(ns=claim.namespace)}/{checkpoint_name(claim)}")
        ensure_created(self.api, PVC_PATH.format(ns=claim.namespace), claim.name, claim.manifest)

    def release_disk(self, claim: DiskClaim) -> None:
        """Delete the checkpoint PVC of a Block disk: no round comes any more.  Not at the
        final round's end: a reconciler killed before recording that round runs it again, and
        the round needs the checkpoints."""
        self.jobs.release(claim)

    def delete_disk(self, claim: DiskClaim) -> None:
        ns = claim.namespace
        self.jobs.delete(ns, transfer_name(claim), wait=False)
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
        return removed + self._delete_all(CONFIGMAP_PATH.format(ns=namespace), labels)

    def cleanup_temporaries(self, namespace: str, labels: dict[str, str]) -> int:
        """Delete what copies and hooks left for the VM that carries ``labels``: Jobs with
        their Secrets, hook ConfigMaps, checkpoint PVCs; never its disks or VirtualMachine."""
        if not labels:
            return 0
        removed = 0
        secrets = SECRET_PATH.format(ns=namespace)
        jobs = JOB_PATH.format(ns=namespace)
        for job in self.api.list(jobs, labels):
            name = job["metadata"]["name"]
            removed += self.api.delete(f"{secrets}/{name}")
            removed += self.api.delete(f"{jobs}/{name}")
        pvcs = PVC_PATH.format(ns=namespace)
        for pvc in self.api.list(pvcs, {**labels, "app.kubernetes.io/component": "transfer"}):
            removed += self.api.delete(f"{pvcs}/{pvc['metadata']['name']}")
        return removed + self._delete_all(CONFIGMAP_PATH.format(ns=namespace), labels)

    def _delete_all(self, path: str, labels: dict[str, str]) -> int:
        return sum(
            self.api.delete(f"{path}/{o['metadata']['name']}") for o in self.api.list(path, labels)
        )

    def gather(self, namespace: str, labels: dict[str, str], since: float | None) -> Gathered:
        """PVCs, Jobs, VirtualMachines and pods carrying all ``labels`` (transfer, conversion
        and hook pods carry their VM's), and the pods' logs; never a Secret."""
        out = Gathered()
        if not labels:
            return out
        for template in (PVC_PATH, JOB_PATH, VM_PATH, POD_PATH):
            for obj in self.api.list(template.format(ns=namespace), labels):
                out.objects.append(obj)
                if template == POD_PATH:
                    name = obj["metadata"]["name"]
                    query = [("sinceSeconds", str(max(1, int(since))))] if since else []
                    text = self.api.text(f"{POD_PATH.format(ns=namespace)}/{name}/log", query)
                    if text:
                        out.logs[name] = text
        return out

    # -- the transfer Job ----------------------------------------------------------------------

    def copy_disk(self, request: CopyRequest) -> CopyOutcome:
        """Run (or find again) the disk's transfer Job and watch it to its end.

        A warm migration's round (``copy.round``) or its round 0 (``copy.snapshot_id``)
        is a Job of its own; the Block disk's checkpoint PVC is kept until the final round."""
        if request.source is None:
            raise TargetError(
                f"{self.describe()} copies through transfer Jobs and needs the source Provider"
            )
        copy = request.copy
        if (copy.round or copy.change_id) and not copy.snapshot_id:
            raise TargetError(
                f"warm copy of disk {copy.disk_key} onto {self.describe()}: the transfer Job "
                "reads the source at a snapshot, and the request names none"
            )
        if copy.round and not copy.since:
            raise TargetError(
                f"precopy round {copy.round} of disk {copy.disk_key}: the transfer Job "
                "needs the change id the changed areas are counted from, and the request has none"
            )
        return self.jobs.copy(request)

    # -- the conversion Job --------------------------------------------------------------------

    def convert_guest(self, request: ConvertRequest) -> ConvertOutcome:
        """Run (or find again) the VM's conversion Job and wait for its outcome."""
        return self.conversions.convert(request)

    # -- hooks ---------------------------------------------------------------------------------

    def run_hook(self, run: HookRun) -> HookOutcome:
        """A Job in the plan's target namespace (``hook_job``), made there first if need be."""
        self.ensure_namespace(run.namespace, {"app.kubernetes.io/managed-by": "mtv-gitops"})
        return self.hooks.run(run)
