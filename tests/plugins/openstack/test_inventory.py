"""The plugin's inventory against what openstacksdk reads directly; the Forklift-shaped
validation input read by the default rules; refreshes by ``changes-since``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.validation.service import Validator
from testpeers.openstack.cloud import GIB, Cloud

pytestmark = pytest.mark.integration


@pytest.fixture
def source(openstack_cloud: Cloud) -> Iterator:
    conn = connect("openstack", openstack_cloud.auth_url, openstack_cloud.secret(), {})
    yield conn
    conn.close()


def test_inventory_is_what_the_sdk_reads(openstack_cloud: Cloud, source) -> None:
    sdk = openstack_cloud.user()
    inv = source.inventory()
    types = {t.name: t.id for t in sdk.block_storage.types()}
    volumes = {v.id: v for v in sdk.block_storage.volumes(details=True)}
    servers = list(sdk.compute.servers(details=True))
    assert sorted(vm.id for vm in inv.vms) == sorted(s.id for s in servers)
    for server in servers:
        vm = inv.find_vm(id=server.id)
        assert (vm.name, vm.cpus, vm.memory_mb) == (
            server.name,
            server.flavor.vcpus,
            server.flavor.ram,
        )
        assert vm.power_state == {"ACTIVE": "On", "SHUTOFF": "Off"}[server.status]
        attached = sorted((a.device, a.volume_id) for a in sdk.compute.volume_attachments(server))
        assert [d.key for d in vm.disks] == [vid for _, vid in attached]  # boot order: vda first
        for disk in vm.disks:
            vol = volumes[disk.key]
            assert disk.capacity == vol.size * GIB and disk.storage == types[vol.volume_type]
        ports = list(sdk.network.ports(device_id=server.id))
        assert sorted((n.network, n.mac) for n in vm.nics) == sorted(
            (p.network_id, p.mac_address) for p in ports
        )
    assert {(n.id, n.name) for n in inv.networks} == {
        (n.id, n.name) for n in sdk.network.networks()
    }
    assert {(s.id, s.name) for s in inv.storages} == set((i, n) for n, i in types.items())
    web = inv.find_vm(name="web")
    assert inv.find_network(name="storage") and inv.find_storage(name="fast")
    assert [d.storage for d in web.disks] == [types["standard"], types["fast"]]
    # the projects the user may scope to, as Keystone lists them for the user's own token
    snap = source._snapshot()
    mine = {p.id: p.name for p in sdk.identity.user_projects(sdk.current_user_id)}
    assert {i: p["name"] for i, p in snap.projects.items()} == mine
    assert snap.project == {"id": sdk.current_project_id, "name": mine[sdk.current_project_id]}
    sdk.close()


def test_validation_input_and_an_image_booted_server(
    openstack_cloud: Cloud, source, tmp_path: Path
) -> None:
    s = openstack_cloud.standins
    seeded = openstack_cloud.extra["seed"]
    net, sub = next(iter(s.networks.values())), next(iter(s.subnets.values()))
    ephemeral = s.add_server(
        "from-image", seeded["flavor"], [], [(net, sub, "10.0.0.99", "fa:16:3e:00:00:99")],
        image_id="0b1d9e0c-5a3e-4e5e-9a43-1f0c4b6f7a01",
    )  # fmt: skip
    store = ProgressStore(tmp_path / "progress.db")
    validator = Validator(store, eval_timeout=60.0)
    try:
        assert validator.prepare("openstack", None).errors == []
        inv = source.inventory()
        docs = {vm.id: source.validation_input(vm.id) for vm in inv.vms}
        web = docs[seeded["web"]["id"]]
        assert web["imageID"] == "" and web["image"]["properties"]["hw_disk_bus"] == "virtio"
        assert [v["bootable"] for v in web["volumes"]] == ["true", "false"]
        assert web["flavor"]["vcpus"] == 2 and web["status"] == "ACTIVE"
        assert docs[ephemeral["id"]]["imageID"] == "0b1d9e0c-5a3e-4e5e-9a43-1f0c4b6f7a01"
        verdicts = validator.validate("t/openstack", "openstack", docs)
        critical = {
            vm_id: [c for c in v.concerns if c.get("category") == "Critical"]
            for vm_id, v in verdicts.items()
        }
        [concern] = critical.pop(ephemeral["id"])
        assert concern["id"] == "mtv-gitops.openstack.vm.image_based"
        assert "booted from an image" in concern["assessment"]
        assert "boot a new server from it" in concern["assessment"]  # what to do
        assert all(found == [] for found in critical.values()), critical
        vm = source.inventory().find_vm(id=ephemeral["id"])
        assert vm.disks == () and vm.concerns[0]["category"] == "Critical"
    finally:
        del s.servers[ephemeral["id"]]
        for port in [p for p in s.ports.values() if p["device_id"] == ephemeral["id"]]:
            del s.ports[port["id"]]
        validator.close()
        store.close()


def test_servers_are_refreshed_by_changes_since(openstack_cloud: Cloud, source) -> None:
    s = openstack_cloud.standins
    db = openstack_cloud.extra["seed"]["db"]
    source.inventory()
    cache = source._cache
    full, incremental = cache.full_reads, cache.incremental_reads
    s.requests.clear()
    db["name"] = "db-renamed"
    db["updated"] = "2999-01-01T00:00:00Z"
    try:
        assert source.inventory().find_vm(id=db["id"]).name == "db-renamed"
        assert (cache.full_reads, cache.incremental_reads) == (full, incremental + 1)
        asked = [p for m, p in s.requests if p.endswith("/servers/detail")]
        assert asked, s.requests
    finally:
        db["name"] = "db"
    assert source.inventory().find_vm(id=db["id"]).name == "db"  # still reported as changed
