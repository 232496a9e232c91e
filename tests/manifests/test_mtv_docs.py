"""The manifests of the MTV 2.4 guide (section 5.1 and 6.1), placeholders filled in, load as-is."""

from __future__ import annotations

import base64
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from reconciler.manifests.errors import Location
from reconciler.manifests.references import check_references
from tests.support.repo import load, write

NS = "openshift-mtv"

PLAYBOOK = base64.b64encode(
    b"---\n- name: Main\n  hosts: localhost\n  tasks:\n  - name: Load Plan\n"
    b"    include_vars:\n      file: /tmp/hook/plan.yml\n      name: plan\n"
).decode()

DOCS = {
    "providers/vsphere.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Provider
        metadata:
          name: vsphere-provider
          namespace: openshift-mtv
        spec:
          type: vsphere
          url: https://vcenter.example.com/sdk
          settings:
            vddkImage: image-registry.example.com:5000/vddk:8.0.1
          secret:
            name: vsphere-credentials
            namespace: openshift-mtv
        """,
    "providers/host.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Provider
        metadata:
          name: host
          namespace: openshift-mtv
        spec:
          type: openshift
          url: ''
        """,
    "providers/esx-host.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Host
        metadata:
          name: esx-13
          namespace: openshift-mtv
        spec:
          provider:
            namespace: openshift-mtv
            name: vsphere-provider
          id: host-44
          ipAddress: 192.168.10.13
        """,
    # destination's keys indented under it (the guide prints them one level too far left)
    "maps/network-map.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: NetworkMap
        metadata:
          name: network-map
          namespace: openshift-mtv
        spec:
          map:
            - destination:
                name: pod
                namespace: openshift-mtv
                type: pod
              source:
                id: network-11
                name: VM Network
            - destination:
                name: storage-lan
                namespace: vlan-20
                type: multus
              source:
                id: dvportgroup-21
                name: Storage LAN
          provider:
            source:
              name: vsphere-provider
              namespace: openshift-mtv
            destination:
              name: host
              namespace: openshift-mtv
        """,
    "maps/storage-map.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: StorageMap
        metadata:
          name: storage-map
          namespace: openshift-mtv
        spec:
          map:
            - destination:
                storageClass: ocs-storagecluster-ceph-rbd
                accessMode: ReadWriteMany
              source:
                id: datastore-12
            - destination:
                storageClass: standard-csi
                accessMode: ReadWriteOnce
              source:
                id: f2737930-b567-451a-9ceb-2887f6207009
          provider:
            source:
              name: vsphere-provider
              namespace: openshift-mtv
            destination:
              name: host
              namespace: openshift-mtv
        """,
    "hooks/playbook-hook.yaml": f"""
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Hook
        metadata:
          name: playbook-hook
          namespace: openshift-mtv
        spec:
          image: quay.io/konveyor/hook-runner
          playbook: |
            {PLAYBOOK}
        """,
    "hooks/cleanup-hook.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Hook
        metadata:
          name: cleanup-hook
          namespace: openshift-mtv
        spec:
          image: quay.io/example/cleanup:1.0
        """,
    # vms: the guide's list is not valid YAML as printed; this is what it means
    "plans/warm-plan.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Plan
        metadata:
          name: warm-plan
          namespace: openshift-mtv
        spec:
          warm: true
          provider:
            source:
              name: vsphere-provider
              namespace: openshift-mtv
            destination:
              name: host
              namespace: openshift-mtv
          map:
            network:
              name: network-map
              namespace: openshift-mtv
            storage:
              name: storage-map
              namespace: openshift-mtv
          targetNamespace: openshift-mtv
          vms:
            - id: vm-1630
            - name: rhel8-vm
              hooks:
                - hook:
                    namespace: openshift-mtv
                    name: playbook-hook
                  step: PreHook
                - hook:
                    namespace: openshift-mtv
                    name: cleanup-hook
                  step: PostHook
        """,
    "migrations/warm-migration.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Migration
        metadata:
          name: warm-migration
          namespace: openshift-mtv
        spec:
          plan:
            name: warm-plan
            namespace: openshift-mtv
          cutover: 2021-04-04T01:23:45.678+09:00
        """,
    "migrations/cancel.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Migration
        metadata:
          name: warm-migration-2
          namespace: openshift-mtv
        spec:
          plan:
            name: warm-plan
            namespace: openshift-mtv
          cancel:
            - id: vm-102
            - id: vm-203
            - name: rhel8-vm
        """,
    "forklift-controller.yaml": """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: ForkliftController
        metadata:
          name: forklift-controller
          namespace: openshift-mtv
        spec:
          olm_managed: true
          feature_ui_plugin: 'true'
          controller_precopy_interval: 30
        """,
}


def docs_repo(root: Path) -> None:
    for rel, text in DOCS.items():
        write(root, rel, text)


def test_docs_manifests_load_without_errors_and_references_resolve(tmp_path: Path) -> None:
    docs_repo(tmp_path)
    d = load(tmp_path)
    assert [str(e) for e in d.errors] == []
    assert check_references(d) == []
    assert d.broken == set()
    counts = {kind: sorted(name for _, name in objs) for kind, objs in d.objects.items() if objs}
    assert counts == {
        "Provider": ["host", "vsphere-provider"],
        "Host": ["esx-13"],
        "NetworkMap": ["network-map"],
        "StorageMap": ["storage-map"],
        "Hook": ["cleanup-hook", "playbook-hook"],
        "Plan": ["warm-plan"],
        "Migration": ["warm-migration", "warm-migration-2"],
        "ForkliftController": ["forklift-controller"],
    }


def test_docs_fields_are_read_with_their_meaning(tmp_path: Path) -> None:
    docs_repo(tmp_path)
    d = load(tmp_path)
    p = d.get("Provider", NS, "vsphere-provider").spec
    assert (p.type, p.url) == ("vsphere", "https://vcenter.example.com/sdk")
    assert p.settings == {"vddkImage": "image-registry.example.com:5000/vddk:8.0.1"}
    assert (p.secret.name, p.secret.namespace) == ("vsphere-credentials", NS)

    h = d.get("Host", NS, "esx-13").spec
    assert (h.id, h.ipAddress, h.provider.name) == ("host-44", "192.168.10.13", "vsphere-provider")

    nm = d.get("NetworkMap", NS, "network-map").spec
    assert [(m.source.id, m.source.name, m.destination.type) for m in nm.map] == [
        ("network-11", "VM Network", "pod"),
        ("dvportgroup-21", "Storage LAN", "multus"),
    ]
    assert (nm.map[1].destination.name, nm.map[1].destination.namespace) == (
        "storage-lan",
        "vlan-20",
    )

    sm = d.get("StorageMap", NS, "storage-map").spec
    assert [
        (m.source.id, m.destination.storageClass, m.destination.accessMode) for m in sm.map
    ] == [
        ("datastore-12", "ocs-storagecluster-ceph-rbd", "ReadWriteMany"),
        ("f2737930-b567-451a-9ceb-2887f6207009", "standard-csi", "ReadWriteOnce"),
    ]

    hook = d.get("Hook", NS, "playbook-hook").spec
    assert hook.image == "quay.io/konveyor/hook-runner"
    assert base64.b64decode(hook.playbook).startswith(b"---\n- name: Main\n")

    plan = d.get("Plan", NS, "warm-plan").spec
    assert plan.warm is True
    assert plan.targetNamespace == NS
    assert [(v.id, v.name) for v in plan.vms] == [("vm-1630", None), (None, "rhel8-vm")]
    assert [(x.step, x.hook.name) for x in plan.vms[1].hooks] == [
        ("PreHook", "playbook-hook"),
        ("PostHook", "cleanup-hook"),
    ]

    mig = d.get("Migration", NS, "warm-migration").spec
    jst = timezone(timedelta(hours=9))
    assert mig.cutover == datetime(2021, 4, 4, 1, 23, 45, 678000, tzinfo=jst)
    assert mig.cutover.utcoffset() == timedelta(hours=9)
    cancel = d.get("Migration", NS, "warm-migration-2").spec.cancel
    assert [(c.id, c.name) for c in cancel] == [
        ("vm-102", None),
        ("vm-203", None),
        (None, "rhel8-vm"),
    ]

    fc = d.get("ForkliftController", NS, "forklift-controller").spec
    assert fc.controller_precopy_interval == 30
    assert fc.olm_managed is True
    assert fc.model_extra == {"feature_ui_plugin": "true"}


def test_forklift_controller_defaults_match_the_guide(tmp_path: Path) -> None:
    write(
        tmp_path,
        "fc.yaml",
        """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: ForkliftController
        metadata: {name: forklift-controller, namespace: openshift-mtv}
        spec: {}
        """,
    )
    fc = load(tmp_path).get("ForkliftController", NS, "forklift-controller").spec
    assert fc.controller_precopy_interval == 60  # "デフォルト値は 60 です"


def test_docs_network_map_type_pod_is_case_insensitive(tmp_path: Path) -> None:
    # the guide's callout lists "Pod" and "multus"
    text = DOCS["maps/network-map.yaml"].replace("type: pod", "type: Pod")
    write(tmp_path, "maps/nm.yaml", text)
    d = load(tmp_path)
    assert d.errors == []
    assert d.get("NetworkMap", NS, "network-map").spec.map[0].destination.type == "pod"


def test_docs_secret_loads_only_when_the_repo_allows_plaintext(tmp_path: Path) -> None:
    secret = """
        apiVersion: v1
        kind: Secret
        metadata:
          name: vsphere-credentials
          namespace: openshift-mtv
          ownerReferences:
            - apiVersion: forklift.konveyor.io/v1beta1
              kind: Provider
              name: vsphere-provider
              uid: 0d5d4d2a-1f7c-4d5e-9c1b-6f2c3f0b9a11
          labels:
            createdForProviderType: vsphere
        type: Opaque
        stringData:
          user: administrator@vsphere.local
          password: not-a-real-password
          insecureSkipVerify: 'false'
          url: https://vcenter.example.com/sdk
          thumbprint: 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67
        """
    write(tmp_path, "providers/secret.yaml", secret)
    [e] = load(tmp_path).errors
    assert e.location == Location("providers/secret.yaml", 2, 1)
    assert e.message.startswith("plaintext Secret in the repo")

    write(tmp_path, ".mtv-gitops.yaml", "allowPlaintextSecrets: true\n")
    d = load(tmp_path)
    assert d.errors == []
    s = d.get("Secret", NS, "vsphere-credentials")
    assert s.meta.labels == {"createdForProviderType": "vsphere"}
    assert s.spec.stringData["thumbprint"].startswith("01:23:45")


MISPRINTED_NETWORK_MAP = """
apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata:
  name: network-map
  namespace: openshift-mtv
spec:
  map:
    - destination:
      name: pod
      namespace: openshift-mtv
      type: pod
      source:
        id: network-11
        name: VM Network
  provider:
    source:
      name: vsphere-provider
      namespace: openshift-mtv
    destination:
      name: host
      namespace: openshift-mtv
"""


def test_docs_misprinted_network_map_gets_one_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "maps/network-map.yaml", MISPRINTED_NETWORK_MAP)
    d = load(tmp_path)
    assert [(str(e.location), e.message) for e in d.errors] == [
        (
            "maps/network-map.yaml:8:7",
            "spec.map[0].destination is empty, and name, namespace, type beside it are not "
            "fields of spec.map[0]: indent them under 'destination'",
        )
    ]
    assert d.errors[0].obj == "NetworkMap openshift-mtv/network-map"
    assert ("NetworkMap", NS, "network-map") in d.broken


def test_docs_plan_vms_as_printed_is_malformed_yaml(tmp_path: Path) -> None:
    plan = textwrap.dedent(DOCS["plans/warm-plan.yaml"])
    printed = plan[: plan.index("  vms:")] + (
        "  vms:\n"
        "    - id: vm-1630\n"
        "      - name: rhel8-vm\n"
        "        hooks:\n"
        "          - hook:\n"
        "              namespace: openshift-mtv\n"
        "              name: playbook-hook\n"
        "            step: PreHook\n"
    )
    lines = write(tmp_path, "plans/warm-plan.yaml", printed).read_text().splitlines()
    write(tmp_path, "hooks/h.yaml", DOCS["hooks/cleanup-hook.yaml"])
    d = load(tmp_path)
    [e] = d.errors
    assert e.location == Location("plans/warm-plan.yaml", 25, 7)
    assert lines[24] == "      - name: rhel8-vm"
    assert e.message.startswith("malformed YAML:")
    assert list(d.of("Hook")) == [(NS, "cleanup-hook")]
