"""The oVirt inventory read from the test engine: equal to what ovirtsdk4 reads directly,
refreshed from the engine's events, shown by ``mtv-gitops inventory``, and mapped by id or by
name (networks as MTV names them: the network, or ``network/profile`` for a vNIC profile)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.plugin_manager import connect
from tests.support.ovirt_engine import PASSWORD, USER, World
from tests.support.repo import write

pytestmark = pytest.mark.integration


def _sdk(world: World, tmp_path: Path):
    import ovirtsdk4 as sdk

    ca = tmp_path / "ca.pem"
    ca.write_text(world.engine.pki.ca_pem)
    return sdk.Connection(url=world.engine.url, username=USER, password=PASSWORD, ca_file=str(ca))


def test_the_inventory_is_what_ovirtsdk4_reads_directly(world: World, tmp_path: Path) -> None:
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    direct = _sdk(world, tmp_path)
    try:
        inv = conn.inventory()
        system = direct.system_service()
        disks = {d.id: d for d in system.disks_service().list()}
        profiles = {p.id: p for p in system.vnic_profiles_service().list()}
        networks = {n.id: n for n in system.networks_service().list()}
        vms = system.vms_service().list()
        assert sorted(v.id for v in inv.vms) == sorted(v.id for v in vms)
        for vm in vms:
            mine = inv.find_vm(id=vm.id)
            assert mine is not None and mine.name == vm.name
            topo = vm.cpu.topology
            assert mine.cpus == topo.sockets * topo.cores * topo.threads
            assert mine.cores_per_socket == topo.cores * topo.threads
            assert mine.memory_mb * 1024 * 1024 == vm.memory
            assert mine.power_state == ("On" if vm.status.value == "up" else "Off")
            assert mine.firmware == ("efi" if vm.bios.type.value == "q35_ovmf" else "bios")
            assert mine.guest_os == vm.os.type
            assert mine.host == (vm.host.id if vm.host else "")
            service = system.vms_service().vm_service(vm.id)
            attachments = service.disk_attachments_service().list()
            assert [d.key for d in mine.disks] == [a.disk.id for a in attachments]
            for disk, a in zip(mine.disks, attachments, strict=True):
                d = disks[a.disk.id]
                assert disk.capacity == d.provisioned_size
                assert disk.storage == d.storage_domains[0].id
                assert disk.format == ("qcow2" if d.format.value == "cow" else "raw")
                assert disk.bus == {"virtio_scsi": "scsi"}.get(a.interface.value, a.interface.value)
            nics = service.nics_service().list()
            assert [(n.name, n.mac, n.network) for n in mine.nics] == [
                (n.name, n.mac.address, n.vnic_profile.id) for n in nics
            ]
        names = {n.id: n.name for n in inv.networks}
        for p in profiles.values():
            assert names[p.id] == f"{networks[p.network.id].name}/{p.name}"
        for n in networks.values():
            assert names[n.id] == n.name
        sds = system.storage_domains_service().list()
        assert {(s.id, s.name) for s in inv.storages} == {(s.id, s.name) for s in sds}
    finally:
        direct.close()
        conn.close()


def test_later_reads_follow_the_engines_events_not_a_full_read(world: World) -> None:
    conn = connect("ovirt", world.engine.url, world.engine.secret(), {})
    try:
        conn.inventory()
        assert conn.cache.full_reads == 1
        conn.inventory()  # no event since: nothing is read again
        assert (conn.cache.full_reads, conn.cache.vm_reads) == (1, 0)
        world.engine.set_status(world.db, "up")  # an event that names the VM
        try:
            inv = conn.inventory()
            assert inv.find_vm(id=world.db).power_state == "On"
            assert (conn.cache.full_reads, conn.cache.vm_reads) == (1, 1)
        finally:
            world.engine.set_status(world.db, "down")
        assert conn.inventory().find_vm(id=world.db).power_state == "Off"
        with world.engine.lock:  # an event that names no VM (a network changed): full read
            world.engine._event(1114, "network vlan10 was updated")
        conn.inventory()
        assert conn.cache.full_reads == 2
    finally:
        conn.close()


REPO = """
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {{name: rhv, namespace: openshift-mtv}}
spec:
  type: ovirt
  url: {url}
  secret: {{name: rhv-secret, namespace: openshift-mtv}}
"""


def test_mtv_gitops_inventory_shows_the_engine(world: World, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "providers/rhv.yaml", REPO.format(url=world.engine.url))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(
        json.dumps({"openshift-mtv/rhv-secret": world.engine.secret()})  # JSON is YAML
    )
    out = CliRunner().invoke(
        cli, ["inventory", str(repo), "-p", "rhv", "--json", "--secrets", str(secrets)]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert {vm["name"] for vm in doc["vms"]} == {"web", "db"}
    assert "vlan10/vlan10-qos" in {n["name"] for n in doc["networks"]}
    assert {"data1", "data2"} <= {s["name"] for s in doc["storages"]}
    out = CliRunner().invoke(cli, ["inventory", str(repo), "-p", "rhv", "--secrets", str(secrets)])
    assert out.exit_code == 0 and "web" in out.output and "ovirtmgmt/ovirtmgmt" in out.output
