"""Two ``mtv-gitops daemon --leader-elect`` processes on one state dir, as two pods on one PVC,
against kmock's API server: one reconciles, the other stands by (ready, not leading); when the
leader is killed the standby takes over and runs the user's next push; SIGTERM hands the Lease
back on the way out."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.support.kube_emulator import Emulator
from tests.support.workspace import (
    CLI,
    ProcessOutput,
    chunks_done,
    migration_yaml,
    small_vm,
    throttle,
    wait_until,
)

pytestmark = pytest.mark.integration
NS = "mtv-gitops"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def kube() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


def _replica(
    ws, kubeconfig: Path, pod: str, lease: tuple[str, str, str] = ("5", "3", "0.2")
) -> tuple[subprocess.Popen, ProcessOutput]:
    """A daemon replica; *lease* is (duration, renew deadline, retry period) in seconds: the
    deadline leaves a busy machine many retries to renew in (a leader that loses its Lease
    because the test machine is slow is a false failure), and a dead leader's Lease is taken
    over a duration later."""
    duration, deadline, retry = lease
    args = [
        *("daemon", str(ws.remote), "--interval", "1", "--state-dir", str(ws.state)),
        *("--cluster", str(ws.cluster), "--leader-elect", "--lease-namespace", NS),
        *("--lease-duration", duration, "--renew-deadline", deadline, "--retry-period", retry),
        *("--health-port", "0"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(COLUMNS="200", KUBECONFIG=str(kubeconfig), POD_NAME=pod)
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    return proc, ProcessOutput(proc)


def _health_url(out: ProcessOutput) -> str:
    wait_until(lambda: any("health and metrics on " in line for line in out.lines))
    line = next(line for line in out.lines if "health and metrics on " in line)
    return re.search(r"http://\S+", line).group(0)


def _get(url: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _has(out: ProcessOutput, text: str) -> bool:
    return any(text in line for line in out.lines)


def test_the_standby_takes_over_when_the_leader_dies(workspace_factory, kube, tmp_path) -> None:
    ws = workspace_factory([small_vm("ha-vm", 3)])
    ws.user_commit({"migrations/demo-plan-1.yaml": None}, "not yet")
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    a, out_a = _replica(ws, kubeconfig, "replica-a")
    b = None
    try:
        wait_until(lambda: out_a.passes() >= 1)  # a took the free Lease and reconciled
        assert _has(out_a, "leading as replica-a_")
        b, out_b = _replica(ws, kubeconfig, "replica-b")
        url_b = _health_url(out_b)
        wait_until(lambda: _has(out_b, "standing by"))
        wait_until(lambda: "replica-a_" in _get(url_b + "/readyz")[1])
        code, text = _get(url_b + "/readyz")
        assert code == 200 and "standby" in text, text
        assert "mtv_gitops_leader 0" in _get(url_b + "/metrics")[1]
        assert _get(url_b + "/healthz")[0] == 200

        a.send_signal(signal.SIGKILL)  # the leader's pod dies: no release
        a.wait(120)
        wait_until(lambda: _has(out_b, "leading as replica-b_"))
        ws.user_commit(
            {"migrations/demo-plan-1.yaml": migration_yaml("demo-plan-1", "demo-plan")}, "go"
        )
        status = "status/migration/openshift-mtv/demo-plan-1.yaml"
        wait_until(lambda: "Succeeded" in (ws.remote_file(status) or ""))
        wait_until(lambda: _get(url_b + "/readyz")[0] == 200)
        metrics = _get(url_b + "/metrics")[1]
        assert "mtv_gitops_leader 1" in metrics
        assert 'mtv_gitops_vms{phase="Completed"} 1' in metrics
        assert out_b.passes() >= 1
        assert not any(line.startswith("pass at ") for line in out_b.lines[: _first(out_b)])

        b.send_signal(signal.SIGTERM)
        assert b.wait(120) == 0, "\n".join(out_b.lines)
        api = client.CoordinationV1Api(kube.api_client())
        lease = api.read_namespaced_lease("mtv-gitops", NS)
        assert not lease.spec.holder_identity  # handed back on the way out
        assert lease.spec.lease_transitions == 1
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(120)


def _first(out: ProcessOutput) -> int:
    """The index of the line where the replica started to lead."""
    return next(i for i, line in enumerate(out.lines) if "leading as" in line)


def test_a_leader_that_loses_the_lease_halts_its_pass_and_stands_by(
    workspace_factory, kube, tmp_path
) -> None:
    ws = workspace_factory([small_vm("slow-vm", 5, data_mib=48, capacity_mib=128)])
    throttle(ws, 2)  # a copy of about 24 s: the test is in the middle of it however slow
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    proc, out = _replica(ws, kubeconfig, "replica-a", lease=("30", "20", "0.2"))
    try:
        url = _health_url(out)
        wait_until(lambda: chunks_done(ws) >= 2)  # leading, and copying
        # another holder takes the Lease (a split brain ends): this one must stop at once
        api = client.CoordinationV1Api(kube.api_client())

        def intruder_holds() -> bool:
            """The intruder writes the Lease until the leader says it lost it: the emulator
            has no optimistic lock, so a renewal racing the write can overwrite it (a real
            API server refuses that renewal); the intruder then writes again, as a holder
            renewing would."""
            if api.read_namespaced_lease("mtv-gitops", NS).spec.holder_identity != "intruder":
                api.patch_namespaced_lease(
                    "mtv-gitops",
                    NS,
                    {"spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 3600}},
                    _content_type="application/merge-patch+json",
                )
            return _has(out, "lost the lease: the lease is held by intruder")

        wait_until(intruder_holds, why=lambda: "\n".join(out.lines))
        wait_until(lambda: _has(out, "standing by") and out.lines[-1].startswith("standing by"))
        code, text = _get(url + "/readyz")
        assert code == 200 and "standby, intruder leads" in text
        assert "mtv_gitops_leader 0" in _get(url + "/metrics")[1]
        [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
        assert vm["phase"] == "CopyDisks" and "error" not in vm  # paused, not failed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, "\n".join(out.lines)
        lease = api.read_namespaced_lease("mtv-gitops", NS)
        assert lease.spec.holder_identity == "intruder"  # a standby hands back nothing
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(120)
