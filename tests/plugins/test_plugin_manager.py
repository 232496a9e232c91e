"""The plugin manager: what plugins declare reaches the core, and a broken plugin is reported
without taking the others down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler.plugin_manager import (
    capabilities,
    rule_types,
    rules_of,
    secret_keys,
    source_types,
)
from reconciler.secrets.resolver import SecretResolver

ROOT = Path(__file__).resolve().parents[2]


def test_the_bundled_plugins_declare_their_types_rules_and_capabilities() -> None:
    assert source_types() == ["openstack", "ova", "ovirt", "vsphere"]
    assert rule_types() == source_types()
    assert rules_of("vsphere").package == "io.konveyor.forklift.vmware"
    assert (rules_of("ova").folder / "validate.rego").is_file()
    assert rules_of("nosuch") is None
    caps = capabilities()
    assert [t for t, c in caps.items() if c.warm] == ["ovirt", "vsphere"]
    assert [t for t, c in caps.items() if c.inflight_per_host] == ["vsphere"]


def test_the_keys_a_plugin_declares_come_from_the_environment() -> None:
    """OpenStack's keys, unknown to the core, pass through like the shared ones."""
    assert {"thumbprint", "domainName", "applicationCredentialSecret"} <= set(secret_keys())
    env = {
        "MTV_GITOPS_SECRET_NS_OSP_APPLICATIONCREDENTIALID": "id-1",
        "MTV_GITOPS_SECRET_NS_OSP_APPLICATIONCREDENTIALSECRET": "s3cret",
        "MTV_GITOPS_SECRET_NS_OSP_REGIONNAME": "regionOne",
        "MTV_GITOPS_SECRET_NS_OSP_PASSWORD": "pw",
    }
    assert SecretResolver(environ=env).resolve("ns", "osp") == {
        "applicationCredentialID": "id-1",
        "applicationCredentialSecret": "s3cret",
        "regionName": "regionOne",
        "password": "pw",
    }


def test_a_plugin_that_cannot_be_imported_is_reported_and_the_others_load(tmp_path: Path) -> None:
    """An entry point whose module is missing (an SDK-less install of a third party's plugin)."""
    info = tmp_path / "broken_source-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-source\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mtv_gitops.sources]\nbroken = mtv_gitops_no_such_module.plugin\n"
    )
    code = (
        "import json; from reconciler.plugin_manager import source_types, load_problems; "
        "print(json.dumps([source_types(), load_problems()]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    types, problems = json.loads(out.stdout)
    assert types == ["openstack", "ova", "ovirt", "vsphere"]
    [problem] = problems
    assert problem.startswith("source plugin broken (mtv_gitops_no_such_module.plugin) cannot")
    assert "ModuleNotFoundError" in problem
