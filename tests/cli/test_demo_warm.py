"""`mtv-gitops demo --warm`: the whole warm demo against the vCenter simulator, as run by hand."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from plugins.vsphere.demo import final_content
from tests.support.vsphere import simulator_binary

pytestmark = pytest.mark.integration


def test_the_warm_demo_cuts_over_with_a_small_final_delta(tmp_path) -> None:
    simulator_binary()  # built (or the test fails saying what is missing) outside the timeout
    workspace = tmp_path / "warm"
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    env.pop("MTV_GITOPS_SECRETS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "demo", "--warm", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a hang guard, not a measure of speed
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "downtime" in out and "cutover bytes:" in out, out
    assert "of a 128 MiB disk" in out
    assert "byte-identical" in out and "0 snapshots left on the source VM" in out
    assert '+  cutover: "' in out  # the one-line diff the reviewer merged
    [image] = (workspace / "cluster" / "demo-warm" / "disks").glob("*.img")
    assert image.read_bytes() == final_content()
    secrets = (workspace / "secrets.yaml").read_text()
    assert "password" in secrets
    tracked = subprocess.run(
        ["git", "-C", str(workspace / "repo"), "grep", "-l", "password", "HEAD"],
        capture_output=True,
        text=True,
    )
    assert tracked.stdout == ""  # the vCenter login never went into git
