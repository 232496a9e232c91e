"""Connecting to the test engine: verified TLS with the secret's CA, and Provider conditions
that say what to do when the password, the certificate or the address is wrong."""

from __future__ import annotations

import pytest

from reconciler.daemon.observe import Sources, observe
from reconciler.plugin_manager import connect
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import SourceError
from reconciler.targets.local import LocalTarget
from tests.support.ovirt_engine import World, make_pki
from tests.support.repo import load, write

pytestmark = pytest.mark.integration


def test_connects_over_tls_verified_by_the_secrets_cacert(world: World) -> None:
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        assert {vm.name for vm in conn.inventory().vms} == {"web", "db"}
    finally:
        conn.close()


def test_a_wrong_password_says_to_check_the_secret(world: World) -> None:
    with pytest.raises(SourceError) as err:
        connect("ovirt", world.engine.url, world.engine.secret(password="wrong"), {})
    text = str(err.value)
    assert "refused the login" in text and "'password'" in text
    assert "admin@internal'" not in text.split("(")[0]  # the user is not named in status


def test_a_certificate_from_another_ca_is_refused_and_says_what_to_put_in_the_secret(
    world: World, tmp_path
) -> None:
    other = make_pki(tmp_path, "other").ca_pem
    for secret in (world.engine.secret(cacert=other), world.engine.secret(cacert="")):
        with pytest.raises(SourceError) as err:
            connect("ovirt", world.engine.url, secret, {})
        assert "not trusted" in str(err.value) and "'cacert'" in str(err.value)
        assert "insecureSkipVerify" in str(err.value)


def test_insecure_skip_verify_only_when_it_is_true(world: World, tmp_path) -> None:
    other = make_pki(tmp_path, "other").ca_pem
    conn = connect(
        "ovirt", world.engine.url, world.engine.secret(cacert=other, insecureSkipVerify="true"), {}
    )
    conn.close()
    for value in ("false", "yes", ""):
        with pytest.raises(SourceError, match="not trusted"):
            connect(
                "ovirt",
                world.engine.url,
                world.engine.secret(cacert=other, insecureSkipVerify=value),
                {},
            )


def test_an_unreachable_engine_says_so() -> None:
    with pytest.raises(SourceError, match="cannot reach the oVirt engine 127.0.0.1:9"):
        connect("ovirt", "https://127.0.0.1:9/ovirt-engine/api", {"user": "u", "password": "p"}, {})
    with pytest.raises(SourceError, match="expected https://<engine>/ovirt-engine/api"):
        connect("ovirt", "http://engine/ovirt-engine/api", {"user": "u"}, {})


PROVIDER = """
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {{name: rhv, namespace: openshift-mtv}}
spec:
  type: ovirt
  url: {url}
  secret: {{name: rhv-secret, namespace: openshift-mtv}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {{name: p, namespace: openshift-mtv}}
spec:
  targetNamespace: vms
  provider:
    source: {{name: rhv, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: n, namespace: openshift-mtv}}
    storage: {{name: s, namespace: openshift-mtv}}
  vms: [{{name: web}}]
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_login_is_a_provider_condition_retried_with_backoff(world: World, tmp_path):
    """The same backoff as every source (15 s, 30 s, ...), at once when the secret changes."""
    clock = Clock()
    sources = Sources(clock=clock)
    target = LocalTarget(tmp_path / "cluster")
    repo = tmp_path / "repo"
    write(repo, "providers/rhv.yaml", PROVIDER.format(url=world.engine.url))
    env = {
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_RHV_SECRET_USER": "admin@internal",
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_RHV_SECRET_PASSWORD": "wrong",
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_RHV_SECRET_CACERT": world.engine.pki.ca_pem,
    }
    key = ("openshift-mtv", "rhv")

    def state(environ):
        conns, states, _ = observe(load(repo), SecretResolver(environ=environ), target, sources)
        return conns[key], states[key]

    logins = lambda: world.engine.requests.count(("POST", "/ovirt-engine/sso/oauth/token"))  # noqa: E731
    before = logins()
    conn, st = state(env)
    assert isinstance(conn, str) and not st.ready and "refused the login" in st.message
    _, st = state(env)  # within the backoff: the engine is not asked again
    assert "failed 1 time(s); next attempt after" in st.message
    assert logins() == before + 1
    clock.now += 16
    _, st = state(env)
    assert "failed 2 time(s)" not in st.message and "refused the login" in st.message
    fixed = {**env, "MTV_GITOPS_SECRET_OPENSHIFT_MTV_RHV_SECRET_PASSWORD": "engine-secret"}
    conn, st = state(fixed)  # the secret changed: at once
    assert st.ready and not isinstance(conn, str), st.message
    sources.close()
