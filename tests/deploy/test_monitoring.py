"""deploy/monitoring/: the PrometheusRule's rules pass `promtool check rules` and the alert unit
tests of `promtool test rules`; every series the alerts and the dashboard read is one that
/metrics serves; kustomize renders the folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.daemon.health import Health
from reconciler.progress.store import ProgressStore
from tests.support.metrics_store import seed as _seed

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
METRIC = re.compile(r"\b(mtv_[a-z_]+[a-z])\b(?!_)")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: `make install` installs it (Debian: prometheus)")
    return found


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as a plain rule file, beside the unit tests."""
    rule = YAML(typ="safe").load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    with (tmp_path / "rules.yaml").open("w") as f:
        YAML(typ="safe").dump(rule["spec"], f)
    shutil.copy(MONITORING / "rules-test.yaml", tmp_path / "rules-test.yaml")
    return tmp_path


def test_promtool_checks_the_rules(rules_dir: Path) -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", str(rules_dir / "rules.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 6 rules found" in out.stdout + out.stderr


def test_promtool_unit_tests_the_alerts(rules_dir: Path) -> None:
    out = subprocess.run(
        [_promtool(), "test", "rules", "rules-test.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=rules_dir,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    alerts = {
        r["alert"]
        for g in YAML(typ="safe").load((rules_dir / "rules.yaml").read_text())["groups"]
        for r in g["rules"]
    }
    tested = set(re.findall(r"alertname: (\w+)", (rules_dir / "rules-test.yaml").read_text()))
    assert alerts == tested  # every alert has a unit test


def _served(tmp_path: Path) -> set[str]:
    """Every sample name /metrics can serve (families, with their suffixes)."""
    store = ProgressStore(tmp_path / "progress.db")
    _seed(store)
    health = Health()
    health.store_from(store)
    text = health.metrics()
    store.close()
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        names |= {
            "counter": {f"{name}_total"},
            "histogram": {f"{name}_bucket", f"{name}_sum", f"{name}_count"},
            "summary": {f"{name}_sum", f"{name}_count"},
        }.get(kind, set())
    return names


def test_alerts_and_dashboard_read_only_served_series(tmp_path: Path) -> None:
    served = _served(tmp_path)
    rules = (MONITORING / "prometheusrule.yaml").read_text()
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set(METRIC.findall(rules)) | {m for e in exprs for m in METRIC.findall(e)}
    assert used and used <= served, sorted(used - served)
    # Forklift's own series are on the dashboard, so MTV users see what they know
    for name in ("mtv_migrations_status_total", "mtv_plans_status", "mtv_plan_alert_status"):
        assert any(name in e for e in exprs), name


def test_kustomize_renders_the_folder() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing: `make test` installs it (Debian: kubernetes-client)")
    out = subprocess.run(
        [kubectl, "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in YAML(typ="safe").load_all(out.stdout) if d]
    assert sorted(kinds) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
