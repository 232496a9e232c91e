"""What hook tests share: a Plan with a PreHook, as the MTV docs write one."""

from __future__ import annotations

PLAN = """\
apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: plan2j, namespace: openshift-mtv}
spec:
  description: move the web tier
  targetNamespace: web
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host}
  map:
    network: {name: net}
    storage: {name: sto}
  vms:
    - id: vm-3696
      hooks:
        - hook: {namespace: openshift-mtv, name: playbook}
          step: PreHook
"""
