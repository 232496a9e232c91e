"""The health server answers over real HTTP: liveness, readiness (standby included), metrics
that Prometheus' own parser reads."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.health import LEADER, STANDBY, Health, HealthServer
from reconciler.progress.store import ProgressStore, VmProgress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def health(clock: _Clock) -> Health:
    return Health(stuck_after=60, clock=clock)


@pytest.fixture
def server(health: Health) -> Iterator[HealthServer]:
    srv = HealthServer(health, "127.0.0.1", 0).start()
    yield srv
    srv.stop()


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from env


def _get(server: HealthServer, path: str) -> tuple[int, str, str]:
    try:
        with _DIRECT.open(server.url + path, timeout=10) as resp:
            return resp.status, resp.read().decode(), resp.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers["Content-Type"]


def test_live_while_the_loop_shows_signs_of_life(server, health, clock) -> None:
    health.watch(threading.current_thread())
    assert _get(server, "/healthz")[:2] == (200, "ok\n")
    clock.now += 61
    code, text, _ = _get(server, "/healthz")
    assert code == 503 and "no sign of life" in text and "61s" in text
    health.copied(4096)  # a copied chunk is a sign of life
    assert _get(server, "/healthz")[0] == 200


def test_not_live_once_the_loop_thread_has_ended(server, health) -> None:
    loop = threading.Thread(target=lambda: None)
    loop.start()
    loop.join()
    health.watch(loop)
    code, text, _ = _get(server, "/healthz")
    assert code == 503 and "ended" in text


def test_ready_after_a_good_git_sync_not_before_nor_after_a_failed_one(server, health) -> None:
    code, text, _ = _get(server, "/readyz")
    assert code == 503 and "no git sync yet" in text
    health.synced()
    assert _get(server, "/readyz")[:2] == (200, "ok: single, the last git sync worked\n")
    health.synced("cannot reach the remote (https://***@git.example/repo.git): timeout")
    code, text, _ = _get(server, "/readyz")
    assert code == 503 and "cannot reach the remote" in text


def test_a_standby_replica_is_ready_and_says_who_leads(server, health) -> None:
    health.role(STANDBY, "mtv-gitops-7d9f_1a2b3c4d")
    code, text, _ = _get(server, "/readyz")
    assert code == 200 and "standby" in text and "mtv-gitops-7d9f_1a2b3c4d leads" in text
    health.role(LEADER)  # a new term syncs before it is ready
    assert _get(server, "/readyz")[0] == 503


def test_metrics_parse_as_prometheus_text(server, health, tmp_path) -> None:
    store = ProgressStore(tmp_path / "progress.db")
    for i, phase in enumerate(["Completed", "Completed", "CopyDisks", 'we"ird\\']):
        store.put_vm(VmProgress("ns/p", f"vm-{i}", phase=phase))
    health.pass_done()
    health.pass_done(failed=True)
    health.copied(3 * 1024 * 1024)
    health.store_from(store)
    code, text, ctype = _get(server, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert families["mtv_gitops_passes"].type == "counter"
    assert samples[("mtv_gitops_passes_total", ())] == 2
    assert samples[("mtv_gitops_failed_passes_total", ())] == 1
    assert samples[("mtv_gitops_copied_bytes_total", ())] == 3 * 1024 * 1024
    assert samples[("mtv_gitops_vms", (("phase", "Completed"),))] == 2
    assert samples[("mtv_gitops_vms", (("phase", "CopyDisks"),))] == 1
    assert samples[("mtv_gitops_vms", (("phase", 'we"ird\\'),))] == 1
    assert samples[("mtv_gitops_leader", ())] == 1
    health.role(STANDBY, "other")
    health.store_from(None)
    text = _get(server, "/metrics")[1]
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["mtv_gitops_leader"] == 0 and "mtv_gitops_vms" not in samples
    store.close()


def test_a_closed_store_does_not_break_a_scrape(server, health, tmp_path) -> None:
    store = ProgressStore(tmp_path / "progress.db")
    store.close()
    health.store_from(store)
    code, text, _ = _get(server, "/metrics")
    assert code == 200 and "mtv_gitops_passes_total 0.0" in text


def test_unknown_paths_are_404(server) -> None:
    assert _get(server, "/nope")[0] == 404
    assert _get(server, "/")[0] == 200  # the status page
