"""What hook tests share: a Plan with a PreHook, as the MTV docs write one, and a kubelet that
plays hook Jobs of the emulated cluster."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLAN = """\
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: plan2j, namespace: openshift-mtv}
spec:
  description: move the web tier
  targetNamespace: web
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host}
  map:
    network: {name: net}
    storage: {name: sto}
  vms:
    - id: vm-3696
      hooks:
        - hook: {namespace: openshift-mtv, name: playbook}
          step: PreHook
"""


@dataclass
class HookPod:
    """One pod the hook kubelet ran."""

    job: str
    pod: str
    image: str
    command: list[str]
    service_account: str
    files: dict[str, str]  # what the ConfigMap mounted at /tmp/hook held
    returncode: int


@dataclass
class HookKubelet:
    """Plays the kubelet and the Job controller for hook Jobs of the emulated cluster.

    For each hook Job it reads the ConfigMap the Job mounts at ``/tmp/hook``, writes its files
    to a folder and runs the playbook there as the hook-runner image would (``ansible-playbook``
    from this environment; ``/tmp/hook/`` in the playbook names the folder, as a mount would),
    publishes the pod with its log, and ends the Job as ``backoffLimit`` and
    ``activeDeadlineSeconds`` say.  ``deadline_passed(job, pod_dir)`` decides when a running
    pod is past its deadline (tests pass an event, not a clock).
    """

    cluster: Any
    root: Path
    deadline_passed: Callable[[dict[str, Any], Path], bool] | None = None
    pods: list[HookPod] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def start(self) -> HookKubelet:
        self._thread = threading.Thread(target=self._loop, name="hook-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for job in self.cluster.list("/apis/batch/v1/jobs"):
                labels = job["metadata"].get("labels", {})
                if labels.get("app.kubernetes.io/component") != "hook" or _ended(job):
                    continue
                self._run(job)
            self._stop.wait(0.05)

    def _run(self, job: dict[str, Any]) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        (volume,) = spec["volumes"]
        cm = self.cluster.get(f"/api/v1/namespaces/{ns}/configmaps/{volume['configMap']['name']}")
        if cm is None:
            return  # as a kubelet does: the pod waits for its ConfigMap
        pod = f"{name}-{next(self._ids):05d}"
        folder = self.root / pod
        folder.mkdir(parents=True)
        files = dict(cm.get("data") or {})
        for key, text in files.items():
            if key == "playbook.yml":
                text = text.replace("/tmp/hook/", f"{folder}/")
            (folder / key).write_text(text)
        pods = f"/api/v1/namespaces/{ns}/pods"
        self.cluster.create(
            pods,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod,
                    "namespace": ns,
                    "labels": {**job["spec"]["template"]["metadata"]["labels"], "job-name": name},
                    "creationTimestamp": f"{time.time():020.6f}",
                },
                "status": {"phase": "Running"},
            },
        )
        command = container.get("command") or []
        assert command[-2:] == ["-p", "/tmp/hook/playbook.yml"], command  # hook-runner's
        proc = subprocess.Popen(
            [sys.executable, "-m", "ansible", "playbook", str(folder / "playbook.yml")],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"},
            start_new_session=True,
        )
        lines: list[str] = []

        def read() -> None:
            for line in proc.stdout or ():
                lines.append(line)
                self.cluster.logs[(ns, pod)] = "".join(lines)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        past_deadline = False
        while proc.poll() is None:
            limit = spec.get("activeDeadlineSeconds")
            if limit and self.deadline_passed is not None and self.deadline_passed(job, folder):
                past_deadline = True
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if self._stop.is_set() or self.cluster.get(f"{_job_path(job)}") is None:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        code = proc.wait()
        reader.join(10)
        self.pods.append(
            HookPod(
                name,
                pod,
                container["image"],
                command,
                spec.get("serviceAccountName", ""),
                files,
                code,
            )
        )
        ok = code == 0 and not past_deadline
        self.cluster.patch(
            f"{pods}/{pod}",
            {"status": {"phase": "Succeeded" if ok else "Failed"}},
        )
        if self.cluster.get(_job_path(job)) is None:
            return
        failed = int((job.get("status") or {}).get("failed") or 0) + (not ok)
        status: dict[str, Any] = {"failed": failed} if not ok else {"succeeded": 1}
        if ok:
            status["conditions"] = [{"type": "Complete", "status": "True"}]
        elif past_deadline:
            status["conditions"] = [
                {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
            ]
        elif failed > job["spec"].get("backoffLimit", 6):
            status["conditions"] = [
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
            ]
        self.cluster.patch(_job_path(job), {"status": status})


def _job_path(job: dict[str, Any]) -> str:
    meta = job["metadata"]
    return f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}"


def _ended(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions", [])
    )
