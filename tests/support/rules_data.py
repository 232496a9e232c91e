"""Rule texts shared by the validation tests."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "validation" / "data"


def multiple_disks_rule(category: str) -> str:
    """The MTV 2.4 docs' custom rule (Rego v0, verbatim) with an id and the given category."""
    text = (DATA / "mtv_docs_multiple_disks.rego").read_text()
    return text.replace(
        '"category": "Information",',
        f'"id": "custom.multiple-disks",\n    "category": "{category}",',
    )
