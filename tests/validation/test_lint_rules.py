"""lint fails a repo's rule set that errors on a typical VM, a malformed concern, a file in
another package; and says which defaults a repo file replaces."""

from __future__ import annotations

from pathlib import Path

from reconciler.validation.lint import lint_rules

HEADER = "package io.konveyor.forklift.ova\n\nimport rego.v1\n\n"
FLAG = '{"id": "c", "category": "Warning", "label": "l", "assessment": "a"}'


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "rules" / "ova"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tmp_path


def test_a_set_that_fails_on_the_sample_vm_fails_lint_naming_the_file(tmp_path: Path) -> None:
    conflict = (
        HEADER
        + "size := 1 if is_string(input.name)\nsize := 2 if is_string(input.name)\n"
        + f"concerns contains {FLAG} if size > 0\n"
    )
    fine = HEADER + f'concerns contains {FLAG} if input.name == "nothing-is-called-this"\n'
    errors, _, _ = lint_rules(_repo(tmp_path, {"conflict.rego": conflict, "fine.rego": fine}))
    assert len(errors) == 1
    assert errors[0].startswith(
        "rules/ova/conflict.rego: evaluating the sample ova VM (sample_vm.json) fails: "
    )


def test_malformed_concerns_are_lint_errors_naming_file_and_line(tmp_path: Path) -> None:
    text = (
        HEADER
        + 'concerns contains "just text" if input.name\n'
        + "concerns contains flag if {\n"
        + '\tflag := {"category": "Warning", "label": "no assessment"}\n}\n'
    )
    errors, _, _ = lint_rules(_repo(tmp_path, {"shape.rego": text}))
    assert errors == [
        "rules/ova/shape.rego:5: a concern must be an object, not a string, number or array",
        'rules/ova/shape.rego:6: a concern must have "category", "label" and "assessment" '
        "(missing: assessment)",
    ]


def test_a_file_in_another_package_is_a_lint_error(tmp_path: Path) -> None:
    text = "package io.konveyor.forklift.vmware\n\nimport rego.v1\n\nx := 1\n"
    errors, _, _ = lint_rules(_repo(tmp_path, {"elsewhere.rego": text}))
    assert errors == [
        "rules/ova/elsewhere.rego:1: `package io.konveyor.forklift.vmware` is not the ova rules' "
        "package `io.konveyor.forklift.ova`: its rules would never be queried"
    ]


def test_a_good_custom_set_passes(tmp_path: Path) -> None:
    fine = HEADER + f"concerns contains {FLAG} if count(input.disks) > 8\n"
    assert lint_rules(_repo(tmp_path, {"fine.rego": fine}))[0] == []


def test_lint_says_which_default_a_repo_file_replaces(tmp_path: Path) -> None:
    usb = HEADER + f"concerns contains {FLAG} if count(input.usb) > 0\n"
    errors, _, notes = lint_rules(_repo(tmp_path, {"usb.rego": usb}))
    assert errors == []
    assert "defaults/ova/usb.rego is replaced by the repo's file of that name" in notes
