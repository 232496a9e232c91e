"""load_repo: every error names file:line:column, and one bad object never stops the rest."""

from __future__ import annotations

from pathlib import Path

from reconciler.manifests.config import RepoConfig
from reconciler.manifests.errors import Location
from tests.support.repo import API, load, write

HOOK = f"""
apiVersion: {API}
kind: Hook
metadata:
  name: {{name}}
spec:
  image: quay.io/konveyor/hook-runner
"""


def hook(name: str) -> str:
    return HOOK.format(name=name)


def test_malformed_yaml_is_located_and_other_files_still_load(tmp_path: Path) -> None:
    write(tmp_path, "hooks/good.yaml", hook("good"))
    write(
        tmp_path,
        "hooks/sub/bad.yaml",
        """
        apiVersion: forklift.konveyor.io/v1beta1
        kind: Hook
        metadata:
          name: bad
            namespace: x
        """,
    )
    d = load(tmp_path)
    assert len(d.errors) == 1
    e = d.errors[0]
    assert e.location == Location("hooks/sub/bad.yaml", 5, 14)
    assert e.message.startswith("malformed YAML: mapping values are not allowed here")
    assert list(d.of("Hook")) == [("openshift-mtv", "good")]


def test_unknown_kind_points_at_kind(tmp_path: Path) -> None:
    write(tmp_path, "x.yaml", f"apiVersion: {API}\nmetadata: {{name: a}}\nkind: Plann\n")
    d = load(tmp_path)
    [e] = d.errors
    assert e.location == Location("x.yaml", 3, 1)
    assert e.message.startswith("unknown kind 'Plann': expected one of ForkliftController, Hook,")
    assert d.objects.get("Plann") is None


def test_wrong_api_version_points_at_api_version(tmp_path: Path) -> None:
    write(tmp_path, "h.yaml", hook("h").replace("v1beta1", "v1alpha1"))
    [e] = load(tmp_path).errors
    assert e.location == Location("h.yaml", 1, 1)
    assert e.message == (
        "apiVersion 'forklift.konveyor.io/v1alpha1' for Hook: expected forklift.konveyor.io/v1beta1"
    )


def test_unknown_top_level_field(tmp_path: Path) -> None:
    write(tmp_path, "h.yaml", hook("h") + "specs: {}\n")
    [e] = load(tmp_path).errors
    assert e.location == Location("h.yaml", 7, 1)
    assert e.message == "unknown top-level field 'specs' in Hook"


PLAN = f"""
apiVersion: {API}
kind: Plan
metadata:
  name: p
  namespace: team-a
spec:
  warm: {{warm}}
  targetNamespace: vms
  provider:
    source: {{{{name: vsphere}}}}
    destination: {{{{name: host}}}}
  map:
    network: {{{{name: net}}}}
    storage: {{{{name: sto}}}}
  vms:
    - id: vm-1
    - name: db
      hookz:
        - hook: {{{{name: h}}}}
          step: PreHook
"""


def test_unknown_field_deep_in_spec_points_at_that_key(tmp_path: Path) -> None:
    write(tmp_path, "plans/p.yaml", PLAN.format(warm="false"))
    d = load(tmp_path)
    [e] = d.errors
    assert e.location == Location("plans/p.yaml", 18, 7)
    assert e.message == "unknown field 'spec.vms[1].hookz'"
    assert e.obj == "Plan team-a/p"
    assert ("Plan", "team-a", "p") in d.broken
    assert d.of("Plan") == {}


def test_wrong_type_names_field_value_and_position(tmp_path: Path) -> None:
    text = PLAN.format(warm="maybe").replace("      hookz:\n", "      hooks:\n")
    write(tmp_path, "p.yaml", text)
    [e] = load(tmp_path).errors
    assert e.location == Location("p.yaml", 7, 3)
    assert e.message.startswith("spec.warm: Input should be a valid boolean")
    assert e.message.endswith("(got 'maybe')")


def test_missing_required_field_points_at_spec(tmp_path: Path) -> None:
    text = PLAN.format(warm="true").replace("  targetNamespace: vms\n", "")
    text = text.replace("      hookz:\n", "      hooks:\n")
    write(tmp_path, "p.yaml", text)
    [e] = load(tmp_path).errors
    assert e.location == Location("p.yaml", 6, 1)
    assert e.message == "missing required field 'spec.targetNamespace'"
    assert str(e) == "p.yaml:6:1: missing required field 'spec.targetNamespace' (Plan team-a/p)"


def test_hook_step_and_vm_ref_are_checked(tmp_path: Path) -> None:
    text = PLAN.format(warm="false").replace("      hookz:\n", "      hooks:\n")
    text = text.replace("step: PreHook", "step: MidHook").replace("- id: vm-1", "- {}")
    write(tmp_path, "p.yaml", text)
    errors = sorted(load(tmp_path).errors, key=lambda e: e.location)
    assert [(str(e.location), e.message.split(":")[0]) for e in errors] == [
        ("p.yaml:16:7", "spec.vms[0]"),
        ("p.yaml:20:11", "spec.vms[1].hooks[0].step"),
    ]
    assert "give an id or a name" in errors[0].message
    assert "'PreHook' or 'PostHook'" in errors[1].message


def test_duplicate_names_across_files_name_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a/one.yaml", hook("same"))
    write(tmp_path, "b/two.yaml", "# a comment\n" + hook("same").lstrip("\n"))
    d = load(tmp_path)
    [e] = d.errors
    assert e.location == Location("b/two.yaml", 5, 3)
    assert e.message == "duplicate Hook openshift-mtv/same: already defined at a/one.yaml:1:1"
    assert d.get("Hook", "openshift-mtv", "same").location == Location("a/one.yaml", 1, 1)


def test_same_name_in_other_namespace_or_kind_is_not_a_duplicate(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", hook("same"))
    write(tmp_path, "b.yaml", hook("same").replace("name: same", "name: same\n  namespace: b"))
    write(
        tmp_path,
        "c.yaml",
        hook("same")
        .replace("kind: Hook", "kind: Provider")
        .replace("image: quay.io/konveyor/hook-runner", "type: ova"),
    )
    d = load(tmp_path)
    assert d.errors == []
    assert set(d.of("Hook")) == {("openshift-mtv", "same"), ("b", "same")}
    assert set(d.of("Provider")) == {("openshift-mtv", "same")}


def test_multi_document_file_with_good_and_bad_documents(tmp_path: Path) -> None:
    text = (
        hook("first").lstrip("\n")
        + "---\n"
        + hook("second").lstrip("\n").replace("image:", "imagee:")
        + "---\n"
        + "# nothing but a comment\n"
        + "---\n"
        + hook("third").lstrip("\n")
        + "---\n"
        + "- just\n- a list\n"
    )
    write(tmp_path, "hooks.yaml", text)
    d = load(tmp_path)
    assert sorted(name for _, name in d.of("Hook")) == ["first", "third"]
    assert d.get("Hook", "openshift-mtv", "third").location == Location("hooks.yaml", 17, 1)
    assert [(str(e.location), e.message) for e in d.errors] == [
        ("hooks.yaml:13:3", "unknown field 'spec.imagee'"),
        ("hooks.yaml:24:1", "expected a mapping with apiVersion, kind, metadata and spec"),
    ]
    assert d.errors[0].obj == "Hook openshift-mtv/second"


SECRET = """
apiVersion: v1
kind: Secret
metadata:
  name: vsphere-credentials
  namespace: openshift-mtv
type: Opaque
stringData:
  user: administrator@vsphere.local
  password: s3cr3t-Pa55
"""


def test_plaintext_secret_is_an_error_by_default(tmp_path: Path) -> None:
    write(tmp_path, "secrets/s.yaml", SECRET)
    d = load(tmp_path)
    [e] = d.errors
    assert e.location == Location("secrets/s.yaml", 2, 1)
    assert e.message.startswith("plaintext Secret in the repo")
    assert "allowPlaintextSecrets: true in .mtv-gitops.yaml" in e.message
    assert "s3cr3t" not in str(e)
    assert d.of("Secret") == {}


def test_plaintext_secret_allowed_by_repo_config(tmp_path: Path) -> None:
    write(tmp_path, ".mtv-gitops.yaml", "allowPlaintextSecrets: true\n")
    write(tmp_path, "secrets/s.yaml", SECRET)
    d = load(tmp_path)
    assert d.errors == []
    s = d.get("Secret", "openshift-mtv", "vsphere-credentials")
    assert s is not None
    assert s.spec.stringData == {"user": "administrator@vsphere.local", "password": "s3cr3t-Pa55"}


def test_errors_in_an_allowed_secret_never_show_its_values(tmp_path: Path) -> None:
    write(tmp_path, ".mtv-gitops.yaml", "allowPlaintextSecrets: true\n")
    write(tmp_path, "s.yaml", SECRET.replace("s3cr3t-Pa55", "123456789"))
    [e] = load(tmp_path).errors
    assert e.location == Location("s.yaml", 9, 3)
    assert e.message.startswith("stringData.password: Input should be a valid string")
    assert "123456789" not in str(e)


def test_status_folder_dot_folders_and_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "status/Plan/openshift-mtv/p.yaml", "not: [valid")
    write(tmp_path, ".github/workflows/ci.yaml", "on: push\njobs: {}\n")
    write(tmp_path, "hooks/.hidden/x.yaml", "{{{")
    write(tmp_path, "README.md", "# repo\n")
    write(tmp_path, "hooks/h.yml", hook("h"))
    write(tmp_path, "plans/status/h.yaml", hook("nested-status-is-not-skipped"))
    d = load(tmp_path)
    assert d.errors == []
    assert sorted(name for _, name in d.of("Hook")) == ["h", "nested-status-is-not-skipped"]


def test_namespace_defaults_from_repo_config(tmp_path: Path) -> None:
    write(tmp_path, ".mtv-gitops.yaml", "defaultNamespace: migrations\n")
    write(tmp_path, "h.yaml", hook("h"))
    write(tmp_path, "g.yaml", hook("g").replace("name: g", "name: g\n  namespace: other"))
    d = load(tmp_path)
    assert set(d.of("Hook")) == {("migrations", "h"), ("other", "g")}
    assert d.get("Hook", "migrations", "h").ref == "Hook migrations/h"
    assert set(load(tmp_path, RepoConfig()).of("Hook")) == {("openshift-mtv", "h"), ("other", "g")}


def test_invalid_metadata_name(tmp_path: Path) -> None:
    write(tmp_path, "h.yaml", hook("Bad_Name"))
    [e] = load(tmp_path).errors
    assert e.location == Location("h.yaml", 4, 3)
    assert e.message.startswith("metadata.name: String should match pattern")
    assert "(got 'Bad_Name')" in e.message


def test_missing_spec(tmp_path: Path) -> None:
    write(tmp_path, "h.yaml", f"apiVersion: {API}\nkind: Hook\nmetadata: {{name: h}}\n")
    d = load(tmp_path)
    [e] = d.errors
    assert (str(e), ("Hook", "openshift-mtv", "h") in d.broken) == (
        "h.yaml:1:1: Hook has no spec (Hook openshift-mtv/h)",
        True,
    )


def test_manifest_keeps_round_trip_document_and_location(tmp_path: Path) -> None:
    write(tmp_path, "h.yaml", "# keep me\n" + hook("h").lstrip("\n"))
    m = load(tmp_path).get("Hook", "openshift-mtv", "h")
    assert m.location == Location("h.yaml", 2, 1)
    assert m.doc["spec"]["image"] == "quay.io/konveyor/hook-runner"
    assert m.spec.image == "quay.io/konveyor/hook-runner"


def test_broken_repo_config_is_reported_and_defaults_used(tmp_path: Path) -> None:
    from reconciler.manifests.config import load_config

    write(tmp_path, ".mtv-gitops.yaml", "defaultNamespce: x\n")
    config, errors = load_config(tmp_path)
    assert config.defaultNamespace == "openshift-mtv"
    [e] = errors
    assert e.location == Location(".mtv-gitops.yaml")
    assert "defaultNamespce" in e.message
