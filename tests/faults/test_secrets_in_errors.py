"""No YAML error, git remote or refused login puts a secret into status, logs or lint output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.gitops._git import redact
from reconciler.manifests.config import RepoConfig, load_config
from reconciler.manifests.loader import load_repo
from reconciler.secrets.resolver import SecretError, SecretResolver

SECRET = "s3cret-{}"

# every kind of broken YAML a Secret may come in; each holds SECRET values that must not leak
BAD_SECRETS = {
    "duplicate key": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    '  password: "{a}"\n  password: "{b}"\n',
    "bad escape": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    '  password: "{a}\\q{b}"\n',
    "wrong tag": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    "  password: !!int {a}{b}\n",
    "unterminated quote": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    "  password: '{a}\n  user: {b}\n",
    "bad indentation": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    "  password: {a}\n   user: {b}: x\n",
    "undefined alias": "apiVersion: v1\nkind: Secret\nmetadata: {{name: vc}}\nstringData:\n"
    "  password: *{a}{b}\n",
}


def _values() -> tuple[str, str]:
    return SECRET.format("A"), SECRET.format("B")


def _assert_clean(text: str) -> None:
    a, b = _values()
    for v in (a, b, "s3cret"):
        assert v not in text, text


@pytest.mark.parametrize("case", sorted(BAD_SECRETS))
def test_a_broken_secret_manifest_is_located_without_its_values(tmp_path: Path, case: str) -> None:
    a, b = _values()
    (tmp_path / "secret.yaml").write_text(BAD_SECRETS[case].format(a=a, b=b))
    errors = load_repo(tmp_path, RepoConfig(allowPlaintextSecrets=True)).errors
    assert len(errors) == 1, errors
    text = str(errors[0])
    assert text.startswith("secret.yaml"), text
    _assert_clean(text)


def test_a_duplicate_key_names_the_key_and_both_lines(tmp_path: Path) -> None:
    a, b = _values()
    (tmp_path / "secret.yaml").write_text(BAD_SECRETS["duplicate key"].format(a=a, b=b))
    [error] = load_repo(tmp_path, RepoConfig()).errors
    assert str(error) == (
        'secret.yaml:6:3: malformed YAML: duplicate key "password" (first at line 5)'
    )


@pytest.mark.parametrize("case", sorted(BAD_SECRETS))
def test_lint_output_holds_no_value(tmp_path: Path, case: str) -> None:
    a, b = _values()
    (tmp_path / ".mtv-gitops.yaml").write_text("allowPlaintextSecrets: true\n")
    (tmp_path / "secret.yaml").write_text(BAD_SECRETS[case].format(a=a, b=b))
    result = CliRunner().invoke(cli, ["lint", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "secret.yaml" in result.output
    _assert_clean(result.output)


def test_a_broken_repo_config_is_reported_without_values(tmp_path: Path) -> None:
    a, b = _values()
    (tmp_path / ".mtv-gitops.yaml").write_text(f"authorName: {a}\nauthorName: {b}\n")
    _, [error] = load_config(tmp_path)
    assert error.location.line == 2
    assert error.message == 'invalid repo config: duplicate key "authorName" (first at line 1)'
    _assert_clean(str(error))


@pytest.mark.parametrize("case", ["duplicate key", "wrong tag", "bad escape"])
def test_a_broken_secrets_file_is_reported_without_values(tmp_path: Path, case: str) -> None:
    a, b = _values()
    body = {
        "duplicate key": f"ns/vc:\n  password: {a}\n  password: {b}\n",
        "wrong tag": f"ns/vc:\n  password: !!int {a}{b}\n",
        "bad escape": f'ns/vc:\n  password: "{a}\\q{b}"\n',
    }[case]
    path = tmp_path / "secrets.yaml"
    path.write_text(body)
    with pytest.raises(SecretError) as err:
        SecretResolver(path).resolve("ns", "vc")
    assert str(path) in str(err.value)
    _assert_clean(str(err.value))


@pytest.mark.parametrize(
    "url",
    [
        "https://oauth2:ghp_ab/cd+ef@git.example.com/org/repo.git",
        "https://x-access-token:tok/with/slashes@example.com/r.git",
        "https://user:p@ss/w@example.com/r.git",
    ],
)
def test_redaction_hides_a_token_holding_slashes(url: str) -> None:
    text = f"fatal: unable to access '{url}/': The requested URL returned error: 403"
    out = redact(text)
    assert "example.com" in out
    for secret in ("ghp_ab", "cd+ef", "tok/with", "slashes", "p@ss"):
        assert secret not in out, out
