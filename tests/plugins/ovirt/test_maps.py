"""Maps for an oVirt source: a network by its id or name, a vNIC profile by its id or its
``network/profile`` name, a storage domain by id or name, resolved against the inventory the
plugin read from the test engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifests.references import check_references
from reconciler.planner.planner import Observed, PlanProgress, decide
from reconciler.plugin_manager import connect
from tests.support.ovirt_engine import World
from tests.support.ovirt_repo import ovirt_repo
from tests.support.planner import CAPS
from tests.support.repo import load

pytestmark = pytest.mark.integration
SRC = ("openshift-mtv", "rhv")


def _decide(root: Path, world: World):
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        inv = conn.inventory()
    finally:
        conn.close()
    desired = load(root)
    assert desired.errors == []
    observed = Observed({SRC: inv}, {"rhv-vms": set()}, capabilities=CAPS)
    [d] = decide(desired, check_references(desired), observed, {"x": PlanProgress()})
    return d


def test_networks_by_id_or_name_and_profiles_by_id_or_network_slash_profile(
    world: World, tmp_path: Path
) -> None:
    e = world.engine
    sd1 = e.storage_domain("data1").id
    ovirtmgmt, vlan10 = e.network("ovirtmgmt").id, e.profile("vlan10").id
    ovirt_repo(
        tmp_path / "a",
        e.url,
        [f"{{id: {ovirtmgmt}}}", "{name: vlan10}"],  # networks: by id, by name
        [f"{{id: {sd1}}}", "{name: data2}"],
        ["{name: web}", "{name: db}"],
    )
    d = _decide(tmp_path / "a", world)
    assert d.ready, d.conditions
    by_name = {v.source_name: v for v in d.vms}
    assert [n.mac for n in by_name["web"].nics] == ["56:6f:1a:00:00:01", "56:6f:1a:00:00:02"]
    assert len(by_name["db"].nics) == 1  # its profile vlan10-qos is on the network vlan10

    ovirt_repo(
        tmp_path / "b",
        e.url,
        ["{name: ovirtmgmt/ovirtmgmt}", f"{{id: {vlan10}}}"],  # profiles: by name, by id
        [f"{{id: {sd1}}}", "{name: data2}"],
        ["{name: web}", "{name: db}"],
    )
    d = _decide(tmp_path / "b", world)
    assert not d.ready
    text = " ".join(c.message for c in d.conditions)
    assert "vlan10/vlan10-qos" in text  # db's profile is mapped neither itself nor by network
    assert "ovirtmgmt/ovirtmgmt" not in text and "vlan10/vlan10 " not in text


def test_a_storage_domain_left_out_of_the_map_is_named(world: World, tmp_path: Path) -> None:
    e = world.engine
    ovirt_repo(
        tmp_path,
        e.url,
        ["{name: ovirtmgmt}", "{name: vlan10}"],
        ["{name: data1}"],
        ["{name: web}"],
    )
    d = _decide(tmp_path, world)
    assert not d.ready and "data2" in " ".join(c.message for c in d.conditions)
