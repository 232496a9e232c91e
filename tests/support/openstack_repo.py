"""OpenStack repos for integration tests: a Provider on the test cloud, maps by id and by
name, a Plan of the seeded servers "web" and "db"."""

from __future__ import annotations

import json
from pathlib import Path

from testpeers.openstack.cloud import Cloud

PROVIDER = """apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata:
  name: openstack
  namespace: openshift-mtv
spec:
  type: openstack
  url: {url}
  secret:
    name: openstack-creds
    namespace: openshift-mtv
"""

MAPS = """apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {{name: os-net, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: openstack, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    - source: {{id: {private_id}}}
      destination: {{type: pod}}
    - source: {{name: storage}}
      destination: {{type: multus, name: backend, namespace: os-vms}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {{name: os-sto, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: openstack, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    - source: {{name: standard}}
      destination: {{storageClass: standard}}
    - source: {{id: {fast_id}}}
      destination: {{storageClass: fast}}
"""

PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {{name: os-plan, namespace: openshift-mtv}}
spec:
  targetNamespace: os-vms
  provider:
    source: {{name: openstack, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: os-net, namespace: openshift-mtv}}
    storage: {{name: os-sto, namespace: openshift-mtv}}
  vms:
    - name: web
    - id: {db_id}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {{name: os-plan-1, namespace: openshift-mtv}}
spec:
  plan: {{name: os-plan, namespace: openshift-mtv}}
"""


def openstack_repo(ws, cloud: Cloud, tmp_path: Path, mib_per_s: float = 0) -> dict[str, str]:
    """Commit the Provider, maps and Plan (with ``mib_per_s``: 1 MiB chunks, copies capped
    at that rate, so an interruption lands mid-copy); the Secret goes to a secrets file (JSON
    is YAML) named by the environment the CLI is run with."""
    seeded = cloud.extra["seed"]
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(json.dumps({"openshift-mtv/openstack-creds": cloud.secret()}))
    files = {
        "providers/openstack.yaml": PROVIDER.format(url=cloud.auth_url),
        "maps/openstack.yaml": MAPS.format(
            private_id=seeded["networks"][0]["id"], fast_id=seeded["fast"]["id"]
        ),
        "plans/os-plan.yaml": PLAN.format(db_id=seeded["db"]["id"]),
    }
    if mib_per_s:
        cfg = (ws.clone / ".mtv-gitops.yaml").read_text().replace("chunkMiB: 4", "chunkMiB: 1")
        files[".mtv-gitops.yaml"] = cfg.replace(
            "verify: true", f"verify: true\n  maxMiBps: {mib_per_s}"
        )
    ws.user_commit(files, "an OpenStack plan")
    return {"MTV_GITOPS_SECRETS": str(secrets)}
