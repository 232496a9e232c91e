"""SecretResolver: secrets file, environment overrides, and messages that never hold values."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.secrets.resolver import SECRETS_ENV, SecretError, SecretResolver, env_name

FILE = """\
openshift-mtv/vsphere-credentials:
  user: administrator@vsphere.local
  password: file-pass-123
  insecureSkipVerify: true
  thumbprint: 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67
team-b/rhv:
  user: admin@internal
  password: 4711
"""


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    p = tmp_path / "secrets.yaml"
    p.write_text(FILE)
    return p


def test_env_name() -> None:
    assert env_name("openshift-mtv", "vsphere-credentials", "password") == (
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_VSPHERE_CREDENTIALS_PASSWORD"
    )
    assert (
        env_name("ns", "a.b", "insecureSkipVerify") == "MTV_GITOPS_SECRET_NS_A_B_INSECURESKIPVERIFY"
    )


def test_file_named_by_env_variable(secrets_file: Path) -> None:
    r = SecretResolver(environ={SECRETS_ENV: str(secrets_file)})
    assert r.path == secrets_file
    assert r.resolve("openshift-mtv", "vsphere-credentials") == {
        "user": "administrator@vsphere.local",
        "password": "file-pass-123",
        "insecureSkipVerify": "true",
        "thumbprint": "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67",
    }
    # YAML numbers become the strings a Secret would hold
    assert r.resolve("team-b", "rhv") == {"user": "admin@internal", "password": "4711"}


def test_explicit_path_wins_over_env(secrets_file: Path, tmp_path: Path) -> None:
    r = SecretResolver(secrets_file, environ={SECRETS_ENV: str(tmp_path / "other.yaml")})
    assert r.resolve("team-b", "rhv")["user"] == "admin@internal"


def test_env_overrides_single_keys(secrets_file: Path) -> None:
    environ = {
        SECRETS_ENV: str(secrets_file),
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_VSPHERE_CREDENTIALS_PASSWORD": "env-pass",
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_VSPHERE_CREDENTIALS_URL": "https://vc/sdk",
        "MTV_GITOPS_SECRET_OPENSHIFT_MTV_VSPHERE_CREDENTIALS_NOTAKEY": "ignored",
    }
    got = SecretResolver(environ=environ).resolve("openshift-mtv", "vsphere-credentials")
    assert got["password"] == "env-pass"
    assert got["url"] == "https://vc/sdk"
    assert got["user"] == "administrator@vsphere.local"
    assert "NOTAKEY" not in got and "notakey" not in got


def test_env_alone_is_enough() -> None:
    environ = {"MTV_GITOPS_SECRET_NS_OVA_TOKEN": "t0k3n"}
    assert SecretResolver(environ=environ).resolve("ns", "ova") == {"token": "t0k3n"}


def test_plaintext_secrets_from_the_repo_are_overridden_by_file_and_env(
    secrets_file: Path,
) -> None:
    r = SecretResolver(
        secrets_file,
        environ={"MTV_GITOPS_SECRET_TEAM_B_RHV_USER": "env-user"},
        plaintext={("team-b", "rhv"): {"user": "repo-user", "cacert": "PEM"}},
    )
    assert r.resolve("team-b", "rhv") == {"user": "env-user", "password": "4711", "cacert": "PEM"}


def test_missing_secret_names_where_it_looked_and_no_values(secrets_file: Path) -> None:
    r = SecretResolver(secrets_file, environ={})
    with pytest.raises(SecretError) as exc:
        r.resolve("openshift-mtv", "missing")
    msg = str(exc.value)
    assert msg == (
        f"secret openshift-mtv/missing not found: add 'openshift-mtv/missing:' to the secrets "
        f"file {secrets_file} or set MTV_GITOPS_SECRET_OPENSHIFT_MTV_MISSING_PASSWORD and friends"
    )
    for value in ("file-pass-123", "4711", "administrator"):
        assert value not in msg


def test_missing_secret_without_a_secrets_file() -> None:
    with pytest.raises(SecretError) as exc:
        SecretResolver(environ={"MTV_GITOPS_SECRET_NS_OTHER_PASSWORD": "pw-999"}).resolve(
            "ns", "name"
        )
    assert "$MTV_GITOPS_SECRETS (unset)" in str(exc.value)
    assert "MTV_GITOPS_SECRET_NS_NAME_PASSWORD" in str(exc.value)
    assert "pw-999" not in str(exc.value)


def test_unreadable_secrets_file(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(SecretError) as exc:
        SecretResolver(folder, environ={}).resolve("ns", "name")
    assert str(exc.value) == f"cannot read secrets file {folder}: IsADirectoryError"

    missing = tmp_path / "nope.yaml"
    with pytest.raises(SecretError, match="FileNotFoundError"):
        SecretResolver(missing, environ={}).resolve("ns", "name")


def test_malformed_secrets_file_hides_its_content(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ns/name:\n  password: 'hunter2\n")
    with pytest.raises(SecretError) as exc:
        SecretResolver(bad, environ={}).resolve("ns", "name")
    assert str(exc.value).startswith(f"cannot read secrets file {bad}: ")
    assert "hunter2" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "expected a mapping of ns/name"),
        ("ns/name: hunter2\n", "ns/name must be a mapping"),
    ],
)
def test_wrong_shape_of_secrets_file(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(SecretError) as exc:
        SecretResolver(p, environ={}).resolve("ns", "name")
    assert str(exc.value) == f"secrets file {p}: {message}"
    assert "hunter2" not in str(exc.value)


def test_file_is_read_once(secrets_file: Path) -> None:
    r = SecretResolver(secrets_file, environ={})
    assert r.resolve("team-b", "rhv")["password"] == "4711"
    secrets_file.write_text("team-b/rhv: {password: changed}\n")
    assert r.resolve("team-b", "rhv")["password"] == "4711"
