"""Connecting through Keystone v3 with each kind of credential an MTV Secret holds, over
verified TLS; each failure a SourceError that says which part to fix."""

from __future__ import annotations

import pytest

from reconciler.plugin_manager import connect
from reconciler.sources import SourceError
from testpeers.openstack.cloud import Cloud, free_port

pytestmark = pytest.mark.integration


def _connect(cloud: Cloud, secret: dict[str, str], url: str = "") -> None:
    conn = connect("openstack", url or cloud.auth_url, secret, {})
    try:
        assert {vm.name for vm in conn.inventory().vms} >= {"web", "db"}
    finally:
        conn.close()


def _refused(cloud: Cloud, secret: dict[str, str], url: str = "") -> str:
    with pytest.raises(SourceError) as err:
        connect("openstack", url or cloud.auth_url, secret, {}).close()
    return str(err.value)


def test_password_with_the_ca_in_the_secret(openstack_cloud: Cloud) -> None:
    _connect(openstack_cloud, openstack_cloud.secret())
    secret = openstack_cloud.secret()
    secret["user"] = secret.pop("username")  # the key the MTV docs' example uses
    _connect(openstack_cloud, secret)


def test_wrong_password_says_the_credentials(openstack_cloud: Cloud) -> None:
    message = _refused(openstack_cloud, openstack_cloud.secret(password="wrong"))
    assert "refused the credentials" in message and "user name or password" in message


def test_wrong_project_says_the_project(openstack_cloud: Cloud) -> None:
    message = _refused(openstack_cloud, openstack_cloud.secret(projectName="nowhere"))
    assert "accepted the user" in message and "'nowhere'" in message, message


def test_unknown_region_names_the_regions(openstack_cloud: Cloud) -> None:
    message = _refused(openstack_cloud, openstack_cloud.secret(regionName="Atlantis"))
    assert "'Atlantis'" in message and "RegionOne" in message, message


def test_unreachable_endpoint(openstack_cloud: Cloud) -> None:
    url = f"https://127.0.0.1:{free_port()}/v3"
    message = _refused(openstack_cloud, openstack_cloud.secret(), url)
    assert "cannot reach Keystone" in message and url in message, message


def test_tls_is_verified_unless_skipped(openstack_cloud: Cloud) -> None:
    secret = openstack_cloud.secret()
    del secret["cacert"]
    message = _refused(openstack_cloud, secret)
    assert "not trusted" in message and "cacert" in message, message
    assert "not trusted" in _refused(openstack_cloud, secret | {"insecureSkipVerify": "false"})
    _connect(openstack_cloud, secret | {"insecureSkipVerify": "true"})


def test_application_credentials(openstack_cloud: Cloud) -> None:
    user = openstack_cloud.user()
    cred = user.identity.create_application_credential(user=openstack_cloud.user_id, name="mtv")
    user.close()
    secret = {
        "applicationCredentialID": cred.id,
        "applicationCredentialSecret": cred.secret,
        "regionName": "RegionOne",
        "cacert": openstack_cloud.tls.ca_pem,
    }
    _connect(openstack_cloud, secret)
    by_name = secret | {"applicationCredentialName": "mtv", "username": "migrator"}
    del by_name["applicationCredentialID"]
    _connect(openstack_cloud, by_name)
    message = _refused(openstack_cloud, secret | {"applicationCredentialSecret": "wrong"})
    assert "application credential" in message, message


def test_token(openstack_cloud: Cloud) -> None:
    user = openstack_cloud.user()
    token = user.session.get_token()
    user.close()
    secret = {
        "token": token,
        "projectName": "migration",
        "domainName": "Default",
        "regionName": "RegionOne",
        "cacert": openstack_cloud.tls.ca_pem,
    }
    _connect(openstack_cloud, secret)
    assert "the token" in _refused(openstack_cloud, secret | {"token": "gAAAA-not-a-token"})
