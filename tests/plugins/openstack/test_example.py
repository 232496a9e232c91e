"""examples/openstack lints clean once its secret is given (no cloud needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "openstack"


def test_the_openstack_example_lints_clean(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secret = {
        "username": "migrator",
        "password": "x",
        "domainName": "Default",
        "projectName": "migration",
        "regionName": "RegionOne",
    }
    secrets.write_text(json.dumps({"openshift-mtv/openstack-credentials": secret}))
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "lint", str(EXAMPLE), "--secrets", str(secrets)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 error(s), 0 warning(s)" in done.stdout, done.stdout
