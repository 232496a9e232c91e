"""A real Prometheus (Debian's, on 127.0.0.1, scraping every second) scrapes a daemon that
migrates the demo plan; its HTTP API then holds Forklift's series with the labels and values
the migration earned, and ours."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.daemon.metrics import plan_uid
from tests.support.daemon import DaemonOutput
from tests.support.workspace import CLI, MIB, small_vm, wait_until

pytestmark = pytest.mark.integration
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
COLD_OVA = {"provider": "ova", "mode": "Cold", "target": "Local"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """prometheus on 127.0.0.1 with its own TSDB under *root*, scraping *target* every 1 s."""

    def __init__(self, root: Path, target: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: `make install` installs it (Debian: prometheus)")
        root.mkdir(parents=True)
        config = root / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "- job_name: mtv-gitops\n"
            f"  static_configs: [{{targets: ['{target}']}}]\n"
        )
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = (root / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict]:
        q = urllib.parse.urlencode({"query": expr})
        try:
            with _DIRECT.open(f"{self.url}/api/v1/query?{q}", timeout=10) as resp:
                body = json.loads(resp.read())
        except OSError:
            return []  # not listening yet
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()


@pytest.fixture
def daemon_and_prometheus(workspace_factory, tmp_path) -> Iterator[tuple]:
    ws = workspace_factory([small_vm("web-1", 1), small_vm("db-2", 2, disks=2)])
    proc = subprocess.Popen(
        [*CLI, "daemon", str(ws.clone), "--interval", "1", "--state-dir", str(ws.state)]
        + ["--cluster", str(ws.cluster), "--health-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = DaemonOutput(proc)
    prom = None
    try:
        out.wait_for(lambda lines: any("health and metrics on" in x for x in lines), "serving")
        url = next(x for x in out.lines if "health and metrics on" in x).split()[-1]
        prom = Prometheus(tmp_path / "prometheus", re.sub(r"^http://", "", url))
        yield ws, out, prom
    finally:
        if prom is not None:
            prom.stop()
        proc.terminate()
        proc.wait(timeout=60)


def _value(prom: Prometheus, expr: str) -> tuple[dict, float] | None:
    found = prom.query(expr)
    if len(found) != 1:
        return None
    return found[0]["metric"], float(found[0]["value"][1])


def test_prometheus_scrapes_the_migration(daemon_and_prometheus) -> None:
    ws, out, prom = daemon_and_prometheus
    out.wait_for(lambda lines: any("1 migration(s) run" in x for x in lines), "the migration")

    def seen(expr: str, value: float) -> bool:
        got = _value(prom, expr)
        return got is not None and got[1] == value

    why = lambda: "\n".join(out.lines)  # noqa: E731
    succeeded = 'mtv_migrations_status_total{status="Succeeded"}'
    wait_until(lambda: seen(succeeded, 1), timeout=240, why=why)

    labels, _ = _value(prom, succeeded)
    assert {k: labels[k] for k in COLD_OVA} == COLD_OVA
    assert labels["job"] == "mtv-gitops"
    uid = plan_uid("openshift-mtv/demo-plan")
    by_plan = _value(prom, "mtv_workload_migrations_status_total")
    assert by_plan[0]["plan"] == uid and by_plan[1] == 1
    wait_until(lambda: seen('mtv_migrated_vms_total{status="Succeeded"}', 2), why=why)
    assert _value(prom, "mtv_planned_vms_total")[1] == 2
    assert _value(prom, 'mtv_plans_status{status="Succeeded"}')[1] == 1
    alert, value = _value(prom, "mtv_plan_alert_status")
    assert value == 1 and alert["plan_name"] == "demo-plan" and alert["phase"] == "Completed"
    # three 64 MiB disks, as the copy tasks count them (Forklift's unit: MiB)
    assert _value(prom, "mtv_migration_data_transferred_bytes")[1] == 3 * 64 * MIB
    assert _value(prom, "mtv_migrations_duration_seconds_count")[1] == 1
    duration = _value(prom, "mtv_migration_duration_seconds")[1]
    bucket = _value(prom, 'mtv_migrations_duration_seconds_bucket{le="3600.0"}')
    assert bucket[1] == (1 if duration <= 3600 else 0)
    assert _value(prom, 'mtv_gitops_vms{phase="Completed"}')[1] == 2
    assert _value(prom, "mtv_gitops_leader")[1] == 1
    assert _value(prom, "mtv_gitops_passes_total")[1] >= 1
    assert _value(prom, "mtv_gitops_copied_bytes_total")[1] > 0
    assert _value(prom, 'up{job="mtv-gitops"}')[1] == 1
