"""A vSphere plan reconciled against the simulator: validated, and held back until disks can
be copied, with every VM left as it was."""

from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from reconciler.sources import sha1_fingerprint
from tests.integration.conftest import small_vm
from tests.plugins.vsphere.conftest import vcsim  # noqa: F401 - the simulator fixture

pytestmark = pytest.mark.integration

PROVIDER = """apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata:
  name: vcenter
  namespace: openshift-mtv
spec:
  type: vsphere
  url: {url}
  secret:
    name: vcenter-creds
    namespace: openshift-mtv
"""
MAPS = """apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {name: vs-net, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: VM Network}
      destination: {type: pod}
    - source: {name: DC0_DVPG0}
      destination: {type: pod}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {name: vs-sto, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: LocalDS_0}
      destination: {storageClass: standard}
"""
PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: vs-plan, namespace: openshift-mtv}
spec:
  targetNamespace: vs-vms
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    network: {name: vs-net, namespace: openshift-mtv}
    storage: {name: vs-sto, namespace: openshift-mtv}
  vms:
    - name: DC0_C0_RP0_VM0
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {name: vs-plan-1, namespace: openshift-mtv}
spec:
  plan: {name: vs-plan, namespace: openshift-mtv}
"""


def test_a_vsphere_plan_is_validated_and_not_run_yet(
    workspace_factory,
    vcsim,  # noqa: F811 - the fixture imported above
    tmp_path,
) -> None:
    ws = workspace_factory([small_vm("steady", 1)])
    secrets = tmp_path / "secrets.yaml"
    fp = sha1_fingerprint(vcsim.host, vcsim.port)
    secrets.write_text(
        f"openshift-mtv/vcenter-creds:\n  user: {vcsim.user}\n  password: {vcsim.password}\n"
        f'  thumbprint: "{fp}"\n'
    )
    ws.user_commit(
        {
            "providers/vcenter.yaml": PROVIDER.format(url=vcsim.url),
            "maps/vsphere.yaml": MAPS,
            "plans/vs-plan.yaml": PLAN,
        },
        "a vSphere plan",
    )
    env = {"MTV_GITOPS_SECRETS": str(secrets)}
    listed = ws.cli("inventory", str(ws.clone), "--provider", "vcenter", env=env, check=True)
    assert "DC0_C0_RP0_VM0" in listed.stdout and "LocalDS_0" in listed.stdout
    as_json = ws.cli("inventory", str(ws.clone), "-p", "vcenter", "--json", env=env, check=True)
    inv = json.loads(as_json.stdout)
    assert {v["name"] for v in inv["vms"]} >= {"DC0_C0_RP0_VM0", "DC0_H0_VM0"}
    assert vcsim.password not in listed.stdout + as_json.stdout
    bad = ws.cli("inventory", str(ws.clone), "-p", "vcenter")  # no secrets file
    assert bad.returncode == 3 and "vcenter-creds" in bad.stderr

    proc = ws.reconcile("--once", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the vSphere plan is not ready
    assert vcsim.password not in proc.stdout + proc.stderr
    plan = ws.status("plan", "vs-plan")["status"]
    conds = {c["type"]: c for c in plan["conditions"]}
    assert "vSphere disk copy is not built yet" in conds["VMSourceNotValid"]["message"]
    assert "Ready" not in conds
    ids = {c.get("id") for v in plan["validation"]["vms"] for c in v["concerns"]}
    assert "vmware.changed_block_tracking.disabled" in ids  # the default vSphere rules ran
    provider = ws.status("provider", "vcenter")["status"]
    assert any(c["type"] == "Ready" for c in provider["conditions"])
    assert YAML(typ="safe").load(ws.remote_file("status/repo.yaml"))["validation"]["vsphere"]
    assert [v["phase"] for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]] == [
        "Completed"
    ]  # the OVA plan beside it ran
