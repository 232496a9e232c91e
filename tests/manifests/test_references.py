"""check_references: each dangling or mismatched reference is an error on the object holding it."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifests.errors import Location
from reconciler.manifests.references import check_references
from tests.support.repo import API, basic_repo, load, write

HOOKED_VMS = """\
    - id: vm-1
      hooks:
        - hook: {name: pre}
          step: PreHook
        - hook: {name: post, namespace: hooks}
          step: PostHook
"""


def migration(root: Path, plan: str = "plan", name: str = "m1") -> None:
    write(
        root,
        f"migrations/{name}.yaml",
        f"""
        apiVersion: {API}
        kind: Migration
        metadata:
          name: {name}
        spec:
          plan: {{name: {plan}}}
        """,
    )


def hooks(root: Path) -> None:
    for name, ns in (("pre", "openshift-mtv"), ("post", "hooks")):
        write(
            root,
            f"hooks/{name}.yaml",
            f"apiVersion: {API}\nkind: Hook\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\nspec: {{}}\n",
        )


def messages(errors) -> list[tuple[str, str, str]]:
    return sorted((str(e.location), e.message, e.obj) for e in errors)


def test_complete_repo_has_no_reference_errors(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms=HOOKED_VMS)
    hooks(tmp_path)
    migration(tmp_path)
    d = load(tmp_path)
    assert d.errors == []
    assert check_references(d) == []


def test_missing_provider(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    write(
        tmp_path,
        "hosts/h.yaml",
        f"""
        apiVersion: {API}
        kind: Host
        metadata: {{name: esx-1}}
        spec:
          id: host-1
          ipAddress: 10.0.0.1
          provider:
            name: vcenter-old
            namespace: elsewhere
        """,
    )
    errors = check_references(load(tmp_path))
    assert messages(errors) == [
        (
            "hosts/h.yaml:7:3",
            "spec.provider refers to Provider elsewhere/vcenter-old, which does not exist",
            "Host openshift-mtv/esx-1",
        )
    ]


def test_missing_source_provider_is_reported_on_every_referrer(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    text = (tmp_path / "providers/providers.yaml").read_text()
    (tmp_path / "providers/providers.yaml").write_text(text.split("---\n")[1])
    errors = check_references(load(tmp_path))
    msg = "spec.provider.source refers to Provider openshift-mtv/vsphere, which does not exist"
    assert messages(errors) == [
        ("maps/network.yaml:7:5", msg, "NetworkMap openshift-mtv/net"),
        ("maps/storage.yaml:7:5", msg, "StorageMap openshift-mtv/sto"),
        ("plans/plan.yaml:8:5", msg, "Plan openshift-mtv/plan"),
    ]


def test_missing_maps_and_hooks_point_at_the_ref_field(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms=HOOKED_VMS)
    (tmp_path / "maps/network.yaml").unlink()
    (tmp_path / "maps/storage.yaml").unlink()
    errors = check_references(load(tmp_path))
    plan = "Plan openshift-mtv/plan"
    assert messages(errors) == [
        (
            "plans/plan.yaml:11:5",
            "spec.map.network refers to NetworkMap openshift-mtv/net, which does not exist",
            plan,
        ),
        (
            "plans/plan.yaml:12:5",
            "spec.map.storage refers to StorageMap openshift-mtv/sto, which does not exist",
            plan,
        ),
        (
            "plans/plan.yaml:16:11",
            "spec.vms[0].hooks[0].hook refers to Hook openshift-mtv/pre, which does not exist",
            plan,
        ),
        (
            "plans/plan.yaml:18:11",
            "spec.vms[0].hooks[1].hook refers to Hook hooks/post, which does not exist",
            plan,
        ),
    ]


def test_missing_plan_of_a_migration(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    migration(tmp_path, plan="no-such-plan")
    [e] = check_references(load(tmp_path))
    assert e.location == Location("migrations/m1.yaml", 6, 3)
    assert e.message == "spec.plan refers to Plan openshift-mtv/no-such-plan, which does not exist"
    assert e.obj == "Migration openshift-mtv/m1"


def test_map_for_another_source_provider(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    write(
        tmp_path,
        "providers/ovirt.yaml",
        f"apiVersion: {API}\nkind: Provider\nmetadata: {{name: rhv}}\nspec: {{type: ovirt}}\n",
    )
    net = tmp_path / "maps/network.yaml"
    net.write_text(net.read_text().replace("source: {name: vsphere}", "source: {name: rhv}"))
    [e] = check_references(load(tmp_path))
    assert e.location == Location("plans/plan.yaml", 11, 5)
    assert e.message == (
        "NetworkMap openshift-mtv/net maps provider openshift-mtv/rhv, but the plan's source "
        "provider is openshift-mtv/vsphere"
    )
    assert e.obj == "Plan openshift-mtv/plan"


def test_openshift_provider_as_source_and_vsphere_as_destination(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    plan = tmp_path / "plans/plan.yaml"
    plan.write_text(
        plan.read_text()
        .replace("source: {name: vsphere}", "source: {name: HOST}")
        .replace("destination: {name: host}", "destination: {name: vsphere}")
        .replace("HOST", "host")
    )
    errors = check_references(load(tmp_path))
    got = messages(errors)
    assert got[:2] == [
        (
            "plans/plan.yaml:11:5",
            "NetworkMap openshift-mtv/net maps provider openshift-mtv/vsphere, but the plan's "
            "source provider is openshift-mtv/host",
            "Plan openshift-mtv/plan",
        ),
        (
            "plans/plan.yaml:12:5",
            "StorageMap openshift-mtv/sto maps provider openshift-mtv/vsphere, but the plan's "
            "source provider is openshift-mtv/host",
            "Plan openshift-mtv/plan",
        ),
    ]
    assert got[2:] == [
        (
            "plans/plan.yaml:8:5",
            "source provider openshift-mtv/host is of type openshift: that is the destination "
            "type; a source is of a type a source plugin answers for",
            "Plan openshift-mtv/plan",
        ),
        (
            "plans/plan.yaml:9:5",
            "destination provider openshift-mtv/vsphere is of type vsphere: the destination "
            "must be an openshift provider",
            "Plan openshift-mtv/plan",
        ),
    ]


def test_reference_to_a_broken_object_says_it_has_errors(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    sto = tmp_path / "maps/storage.yaml"
    sto.write_text(sto.read_text().replace("storageClass: slow", "storageClas: slow"))
    migration(tmp_path)
    d = load(tmp_path)
    assert [(str(e.location), e.message) for e in d.errors] == [
        ("maps/storage.yaml:13:7", "missing required field 'spec.map[1].destination.storageClass'"),
        ("maps/storage.yaml:13:21", "unknown field 'spec.map[1].destination.storageClas'"),
    ]
    assert ("StorageMap", "openshift-mtv", "sto") in d.broken
    [e] = check_references(d)
    assert e.location == Location("plans/plan.yaml", 12, 5)
    assert e.message == (
        "spec.map.storage refers to StorageMap openshift-mtv/sto, which has errors (see above)"
    )
    # the Migration still finds its (valid) plan
    assert not [x for x in check_references(d) if x.obj.startswith("Migration")]
