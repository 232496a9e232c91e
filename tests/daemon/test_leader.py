"""Leader election against an API server (kmock's KubernetesEmulator): one of two candidates
leads, the other waits and takes over when the first dies; a leader that loses the Lease stops.

The electors read a hand-moved clock (``ManualClock``): a lease expires or a renew deadline
passes only when the test advances it, so a busy machine that answers late cannot make a leader
lose its Lease or a standby take it.  Attempts are still paced by the real retry period (0.1 s);
the tests wait for events with generous timeouts and never assert on how fast anything was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client
from ruamel.yaml import YAML

from reconciler.daemon.leader import LeaderElector, LeaseSettings
from tests.support.clock import ManualClock
from tests.support.kube_emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
NS, NAME = "mtv-gitops", "mtv-gitops"
FAST = dict(lease_duration=1, renew_deadline=0.5, retry_period=0.1)
PATIENCE = 120.0  # seconds before a wait is a failure (never a measure of speed)


@pytest.fixture
def kube() -> Iterator[Emulator]:
    emu = Emulator().start()
    yield emu
    emu.stop()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def _elector(kube: Emulator, identity: str, clock: ManualClock) -> LeaderElector:
    api = client.CoordinationV1Api(kube.api_client())
    settings = LeaseSettings(name=NAME, namespace=NS, identity=identity, **FAST)
    return LeaderElector(api, settings, clock=clock)


def _lease(kube: Emulator) -> client.V1Lease:
    return client.CoordinationV1Api(kube.api_client()).read_namespaced_lease(NAME, NS)


def _wait(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class _Candidate:
    """Campaigns in a thread, as a standby replica's main loop does."""

    def __init__(self, elector: LeaderElector) -> None:
        self.elector = elector
        self.stop = threading.Event()
        self.attempts = 0
        self.leads = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        if self.elector.acquire(self.stop, tick=self._tick):
            self.leads.set()

    def _tick(self) -> None:
        self.attempts += 1

    def end(self) -> None:
        self.stop.set()
        self.thread.join(PATIENCE)


def test_one_leads_the_other_waits_then_takes_over_when_the_leader_dies(kube, clock) -> None:
    a, b = _elector(kube, "replica-a", clock), _elector(kube, "replica-b", clock)
    assert a.acquire(threading.Event())  # a free Lease is taken at once
    lost_a: list[str] = []
    a.start_renewing(lost_a.append)
    assert _lease(kube).spec.holder_identity == "replica-a"

    standby = _Candidate(b)
    try:
        # b tries again and again while a renews: b waits, however long that takes
        _wait(lambda: standby.attempts >= 15, "the standby's attempts")
        assert not standby.leads.is_set() and not b.is_leader
        assert b.holder == "replica-a"
        assert a.is_leader and not lost_a

        a.abandon()  # the leader dies: no more renewals, no release
        seen = standby.attempts
        _wait(lambda: standby.attempts > seen + 1, "the standby to read the last renewal")
        assert not standby.leads.is_set()  # the lease has not expired on b's clock yet
        clock.advance(1.5)  # past the lease duration (1 s) since b last saw it change
        _wait(standby.leads.is_set, "the standby to take over")
        assert b.is_leader
        lease = _lease(kube)
        assert lease.spec.holder_identity == "replica-b"
        assert lease.spec.lease_transitions == 1
        assert lease.spec.lease_duration_seconds == 1
    finally:
        standby.end()
        b.abandon()


def test_a_graceful_leader_hands_the_lease_over(kube, clock) -> None:
    a, b = _elector(kube, "replica-a", clock), _elector(kube, "replica-b", clock)
    assert a.acquire(threading.Event())
    a.start_renewing(lambda reason: None)
    standby = _Candidate(b)
    try:
        _wait(lambda: standby.attempts >= 3, "the standby's attempts")
        a.release()
        assert not a.is_leader
        _wait(standby.leads.is_set, "the standby to take over")
        assert _lease(kube).spec.holder_identity == "replica-b"
    finally:
        standby.end()
        b.release()
    assert not _lease(kube).spec.holder_identity  # released: nobody holds it
    _assert_allowed_by_the_role(kube)


VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def _assert_allowed_by_the_role(kube: Emulator) -> None:
    """Every request the electors made is one that deploy/rbac.yaml's Role allows."""
    docs = YAML(typ="safe").load_all((ROOT / "deploy" / "rbac.yaml").read_text())
    [role] = [d for d in docs if d["kind"] == "Role"]
    rules = [r for r in role["rules"] if "leases" in r["resources"]]
    prefix = f"/apis/coordination.k8s.io/v1/namespaces/{role['metadata']['namespace']}/leases"
    requests = [r for r in kube.emulator if r.url.path.startswith(prefix)]
    assert requests
    for request in requests:
        name = request.url.path[len(prefix) :].strip("/")
        verb = VERBS[request.method.value]
        assert any(
            verb in r["verbs"] and (not r.get("resourceNames") or name in r["resourceNames"])
            for r in rules
        ), f"{request.method.value} {request.url.path} is not allowed by the Role"


def test_a_leader_that_finds_another_holder_stops(kube, clock) -> None:
    a = _elector(kube, "replica-a", clock)
    assert a.acquire(threading.Event())
    lost = threading.Event()
    reasons: list[str] = []
    a.start_renewing(lambda reason: (reasons.append(reason), lost.set()))

    # someone else writes the Lease (a split brain, or an admin): the leader must stop at once.
    # The emulator has no optimistic lock, so a renewal racing the write can overwrite it (a
    # real API server refuses that renewal): the intruder then writes again, as it would renew.
    deadline = time.monotonic() + PATIENCE
    while not lost.is_set():
        assert time.monotonic() < deadline, "the leader never saw the intruder"
        if _lease(kube).spec.holder_identity != "intruder":
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            client.CoordinationV1Api(kube.api_client()).patch_namespaced_lease(
                NAME,
                NS,
                {
                    "spec": {
                        "holderIdentity": "intruder",
                        "renewTime": now,
                        "leaseDurationSeconds": 60,
                    }
                },
                _content_type="application/merge-patch+json",
            )
        lost.wait(0.2)
    assert not a.is_leader
    assert reasons == ["the lease is held by intruder"]
    a.abandon()
    assert _lease(kube).spec.holder_identity == "intruder"  # the loser wrote nothing more


def test_a_leader_that_cannot_renew_stops_after_the_renew_deadline(kube, clock) -> None:
    a = _elector(kube, "replica-a", clock)
    assert a.acquire(threading.Event())
    lost = threading.Event()
    reasons: list[str] = []
    a.start_renewing(lambda reason: (reasons.append(reason), lost.set()))
    kube.stop()  # the API server goes away: renewals fail, but within the deadline on a's clock
    assert not lost.wait(1.0)  # failed renewals alone, however many, lose nothing
    assert a.is_leader
    clock.advance(0.6)  # past the renew deadline (0.5 s)
    assert lost.wait(PATIENCE)
    assert not a.is_leader
    assert reasons[0].startswith("not renewed for 0.5s")
    a.abandon()


def test_the_timings_must_leave_the_leader_time_to_stop() -> None:
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        LeaseSettings(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError):
        LeaseSettings(lease_duration=15, renew_deadline=2, retry_period=2)
