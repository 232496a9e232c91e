"""Target VM names: MTV's renaming rule (guide section 2.4) and stable unique suffixes."""

from __future__ import annotations

import pytest

from reconciler.planner.naming import MAX_NAME, dns1123_name, is_dns1123_label, unique_name


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("web01", "web01"),
        ("Web01", "web01"),  # upper case to lower case
        ("my_vm_1", "my-vm-1"),  # "_" to "-"
        ("My VM (copy)", "myvmcopy"),  # excluded characters removed
        ("db.example.com", "dbexamplecom"),  # periods are not allowed either
        ("-_edge_-", "edge"),  # must start and end alphanumeric
        ("Ünïcode", "ncode"),
        ("日本語", "vm"),  # nothing left: a fallback name
        ("", "vm"),
    ],
)
def test_mtv_renaming_rule(source: str, target: str) -> None:
    assert dns1123_name(source) == target
    assert is_dns1123_label(dns1123_name(source))


def test_long_names_are_cut_to_63_and_trimmed() -> None:
    name = "a" * 62 + "_b" * 10
    out = dns1123_name(name)
    assert out == "a" * 62  # 63rd char is "-" and gets trimmed
    assert len(dns1123_name("x" * 300)) == MAX_NAME == 63


def test_unique_name_keeps_a_free_name() -> None:
    assert unique_name("web01", {"db01"}, "vm-1") == "web01"


def test_unique_name_suffix_is_stable_and_depends_on_salt() -> None:
    a = unique_name("web01", {"web01"}, "vm-1")
    assert a == unique_name("web01", {"web01"}, "vm-1")
    assert a.startswith("web01-") and len(a) == len("web01-") + 4
    b = unique_name("web01", {"web01"}, "vm-2")
    assert a != b
    # if the first suffix is taken too, the next one is tried
    c = unique_name("web01", {"web01", a}, "vm-1")
    assert c not in {"web01", a} and c.startswith("web01-")
    assert c == unique_name("web01", {"web01", a}, "vm-1")


def test_unique_name_stays_a_63_char_label() -> None:
    long = "a" * 62 + "b"
    out = unique_name(long, {long}, "vm-1")
    assert len(out) == 63
    assert out.startswith("a" * 58 + "-")
    assert is_dns1123_label(out)


def test_is_dns1123_label() -> None:
    assert is_dns1123_label("a-1")
    assert not is_dns1123_label("a.b")
    assert not is_dns1123_label("-a")
    assert not is_dns1123_label("A")
    assert not is_dns1123_label("a" * 64)
