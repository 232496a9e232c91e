"""A cluster for the kubevirt target's tests: kmock's KubernetesEmulator as the API server, and
a kubelet played by the test.

Nothing runs pods in the emulator, so :class:`Kubelet` does what the kubelet and the Job
controller would do for transfer Jobs: it reads each Job the target made, runs its command here
(the same argv, the environment from the Job spec with secret values read from the emulator's
Secret, the PVC's paths mapped to local files), publishes the pod with its termination message
and log, and marks the Job complete or failed as ``backoffLimit`` and ``podFailurePolicy`` say.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
from kmock._internal import parsing
from ruamel.yaml import YAML

from tests.support.kube_emulator import Emulator

TOKEN = "test-token"

# what the target and the tests use, and what a cluster with KubeVirt, CDI and multus serves
RESOURCES: dict[str, dict[str, Any]] = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False},
    "v1/persistentvolumeclaims": {"kind": "PersistentVolumeClaim", "namespaced": True},
    "v1/secrets": {"kind": "Secret", "namespaced": True},
    "v1/configmaps": {"kind": "ConfigMap", "namespaced": True},
    "v1/pods": {"kind": "Pod", "namespaced": True, "subresources": {"log", "status"}},
    "batch/v1/jobs": {"kind": "Job", "namespaced": True, "subresources": {"status"}},
    "storage.k8s.io/v1/storageclasses": {"kind": "StorageClass", "namespaced": False},
    "kubevirt.io/v1/virtualmachines": {"kind": "VirtualMachine", "namespaced": True},
    "kubevirt.io/v1/virtualmachineinstances": {
        "kind": "VirtualMachineInstance",
        "namespaced": True,
    },
    "cdi.kubevirt.io/v1beta1/datavolumes": {"kind": "DataVolume", "namespaced": True},
    "cdi.kubevirt.io/v1beta1/storageprofiles": {"kind": "StorageProfile", "namespaced": False},
    "k8s.cni.cncf.io/v1/network-attachment-definitions": {
        "kind": "NetworkAttachmentDefinition",
        "namespaced": True,
    },
}

_original_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads ``/api/v1/namespaces[/NAME]`` as a namespaced path with no resource (and
    fails on the bare list); here it is the cluster-scoped Namespace resource it is."""
    parts = path.strip("/").split("/")
    if len(parts) in (3, 4) and parts[0] == "api" and parts[2] == "namespaces":
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath("", parts[1], "namespaces", None, name, None)
    return _original_parse_path(path)


parsing.parse_path = _parse_path


class Cluster:
    """The emulator with the resources declared, and plain JSON access for the tests."""

    def __init__(self) -> None:
        self.emu = Emulator().start()
        assert self.emu.emulator is not None
        for res, info in RESOURCES.items():
            self.emu.emulator.resources[res] = info
        self.url = self.emu.url
        self.logs: dict[tuple[str, str], str] = {}  # (namespace, pod) -> its log so far
        self.emu.emulator[kmock.subresource("log")] << self._serve_log

    def _serve_log(self, request: Any) -> bytes:
        text = self.logs.get((request.namespace, request.name), "")
        tail = request.params.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return text.encode()

    def stop(self) -> None:
        self.emu.stop()

    def requests(self) -> list[Any]:
        assert self.emu.emulator is not None
        return list(self.emu.emulator)

    def _req(self, method: str, path: str, body: Any = None, ctype: str = "") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype or "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(raw) if raw else None

    def get(self, path: str) -> dict[str, Any] | None:
        return self._req("GET", path)

    def list(self, path: str) -> list[dict[str, Any]]:
        return (self._req("GET", path) or {}).get("items", [])

    def create(self, path: str, body: dict[str, Any]) -> None:
        self._req("POST", path, body)

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self._req("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path: str) -> None:
        self._req("DELETE", path)

    def names(self, path: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in self.list(path))


@dataclass
class Run:
    """One pod the kubelet ran."""

    job: str
    pod: str
    argv: list[str]
    env: dict[str, str]
    returncode: int
    message: str


@dataclass
class Kubelet:
    """Runs transfer Jobs of the emulator here, one pod at a time, in a thread of its own.

    ``root/<namespace>/<pvc>/`` holds a Filesystem PVC's files, ``root/<namespace>/<pvc>.raw``
    stands for a Block PVC's device. ``redirect[(namespace, pvc, rest)]`` sends one path of a
    PVC elsewhere (``rest`` is the path below the mount, "" for a block device): a missing
    folder makes the command fail, ``/dev/full`` makes the disk full. ``before_run(job)`` runs
    before each pod; returning False skips the pod for now.
    """

    cluster: Cluster
    root: Path
    redirect: dict[tuple[str, str, str], Path] = field(default_factory=dict)
    before_run: Any = None
    # a pod running longer is killed (a real guest's conversion in software mode takes minutes)
    pod_seconds: float = 120.0
    runs: list[Run] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def start(self) -> Kubelet:
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def storage(self, namespace: str, pvc: str) -> Path:
        return self.root / namespace / pvc

    def delete_pvc_by_hand(self, namespace: str, pvc: str) -> None:
        """As a user would: the PVC goes, and the storage behind it with it."""
        self.cluster.delete(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{pvc}")
        shutil.rmtree(self.storage(namespace, pvc), ignore_errors=True)
        self.storage(namespace, pvc).with_suffix(".raw").unlink(missing_ok=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for job in self.cluster.list("/apis/batch/v1/jobs"):
                if self._stop.is_set():
                    return
                hook = job["metadata"].get("labels", {}).get("app.kubernetes.io/component")
                if not _finished(job) and hook != "hook":  # hook Jobs: tests/support/hooks.py
                    self._run_job(job)
            self._stop.wait(0.05)

    def _job_path(self, job: dict[str, Any]) -> str:
        meta = job["metadata"]
        return f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}"

    def _run_job(self, job: dict[str, Any]) -> None:
        if self.before_run is not None and self.before_run(job) is False:
            return
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = self._env(ns, container.get("env", []))
        if env is None:  # as a kubelet does: the pod waits for its Secret (or its Job goes)
            return
        failed = int((job.get("status") or {}).get("failed") or 0)
        pod = f"{name}-{next(self._ids):05d}"
        labels = {**job["spec"]["template"]["metadata"].get("labels", {}), "job-name": name}
        pod_path = f"/api/v1/namespaces/{ns}/pods"
        self.cluster.create(
            pod_path,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod,
                    "namespace": ns,
                    "labels": labels,
                    "creationTimestamp": f"{time.time():020.6f}",
                },
                "status": {"phase": "Running"},
            },
        )
        termination = self.root / "pods" / pod / "termination-log"
        termination.parent.mkdir(parents=True, exist_ok=True)
        argv = [self._path(ns, spec, container, a, termination) for a in container["command"]]
        assert argv[0] == "mtv-gitops"
        argv = [sys.executable, "-m", "reconciler.cli", *argv[1:]]
        code, log = self._execute(argv, env, ns, pod, self._job_path(job))
        message = termination.read_text() if termination.exists() else ""
        if not message and code != 0 and container["terminationMessagePolicy"].startswith("Fall"):
            message = "".join(log.splitlines(keepends=True)[-80:])
        self.runs.append(Run(name, pod, argv, env, code, message))
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message,
        }
        self.cluster.patch(
            f"{pod_path}/{pod}",
            {
                "status": {
                    "phase": "Succeeded" if code == 0 else "Failed",
                    "containerStatuses": [
                        {"name": container["name"], "state": {"terminated": terminated}}
                    ],
                }
            },
        )
        if self.cluster.get(self._job_path(job)) is None:
            return  # deleted while it ran
        if code == 0:
            status = {
                "succeeded": 1,
                "conditions": [{"type": "Complete", "status": "True"}],
            }
        else:
            failed += 1
            status = {"failed": failed}
            fatal = any(
                r["action"] == "FailJob" and code in r.get("onExitCodes", {}).get("values", [])
                for r in job["spec"].get("podFailurePolicy", {}).get("rules", [])
            )
            if fatal or failed > job["spec"].get("backoffLimit", 6):
                reason = "PodFailurePolicy" if fatal else "BackoffLimitExceeded"
                status["conditions"] = [
                    {"type": "Failed", "status": "True", "reason": reason, "message": reason}
                ]
        self.cluster.patch(self._job_path(job), {"status": status})

    def _execute(
        self, argv: list[str], env: dict[str, str], ns: str, pod: str, job_path: str
    ) -> tuple[int, str]:
        """Run the pod's command; a Job deleted meanwhile stops it as Kubernetes would."""
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                self.cluster.logs[(ns, pod)] = "".join(lines)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + self.pod_seconds
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
            elif self.cluster.get(job_path) is None or self._stop.is_set():
                proc.terminate()  # SIGTERM: the command stops at a durable point
                proc.wait(30)
                break
            time.sleep(0.05)
        reader.join(10)
        return proc.wait(), "".join(lines)

    def _path(
        self,
        ns: str,
        spec: dict[str, Any],
        container: dict[str, Any],
        arg: str,
        termination: Path,
    ) -> str:
        """A path inside the pod -> the local file that stands for it."""
        if arg == container["terminationMessagePath"]:
            return str(termination)
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        for dev in container.get("volumeDevices", []):
            if arg == dev["devicePath"]:
                pvc = claims[dev["name"]]
                local = self.redirect.get((ns, pvc, ""))
                if local is None:
                    local = self.storage(ns, pvc).with_suffix(".raw")
                    local.parent.mkdir(parents=True, exist_ok=True)
                return str(local)
        for mount in container.get("volumeMounts", []):
            prefix = mount["mountPath"].rstrip("/") + "/"
            if arg.startswith(prefix):
                pvc, rest = claims[mount["name"]], arg[len(prefix) :]
                local = self.redirect.get((ns, pvc, rest))
                if local is None:
                    self.storage(ns, pvc).mkdir(parents=True, exist_ok=True)
                    local = self.storage(ns, pvc) / rest
                return str(local)
        return arg

    def _env(self, ns: str, env: list[dict[str, Any]]) -> dict[str, str] | None:
        """The container's environment, secret values read; None while a Secret is missing."""
        out = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.root)}
        for item in env:
            if "value" in item:
                out[item["name"]] = item["value"]
                continue
            ref = item["valueFrom"]["secretKeyRef"]
            secret = self.cluster.get(f"/api/v1/namespaces/{ns}/secrets/{ref['name']}")
            if secret is None:
                return None
            if ref["key"] in secret.get("stringData", {}):
                out[item["name"]] = secret["stringData"][ref["key"]]
            else:
                out[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return out


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions", [])
    )


def to_cluster(ws: Any, cluster: Cluster, retries: int = 2) -> dict[str, str]:
    """Point the destination Provider at the cluster (as a user commit); the environment
    for the reconciler, with the token in a secrets file."""
    yaml = YAML(typ="rt")
    path = ws.clone / "providers" / "providers.yaml"
    docs = list(yaml.load_all(path.read_text()))
    assert docs[1]["spec"]["type"] == "openshift"
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1", "transferRetries": str(retries)}
    out = io.StringIO()
    yaml.dump_all(docs, out)
    ws.user_commit({"providers/providers.yaml": out.getvalue()}, "migrate to the cluster")
    secrets = ws.root / "secrets.yaml"
    secrets.write_text(f"openshift-mtv/cluster-token:\n  token: {TOKEN}\n")
    return {"MTV_GITOPS_SECRETS": str(secrets)}
