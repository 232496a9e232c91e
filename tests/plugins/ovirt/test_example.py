"""``examples/ovirt`` (the MTV docs' oVirt Provider, maps and plan) passes ``mtv-gitops lint``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "ovirt"


def test_the_ovirt_example_repo_passes_lint() -> None:
    out = CliRunner().invoke(cli, ["lint", str(EXAMPLE)], env={"MTV_GITOPS_SECRETS": ""})
    assert out.exit_code == 0, out.output
    assert "2 Provider" in out.output and "0 error(s)" in out.output
