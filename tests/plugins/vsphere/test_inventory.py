"""The vSphere plugin against govmomi's vCenter simulator: TLS pinning, login, inventory."""

from __future__ import annotations

import json

import pytest

from plugins.vsphere import session
from plugins.vsphere.plugin import VsphereConnection, mtv_gitops_connect
from reconciler.sources import SourceError, sha1_fingerprint
from reconciler.validation.engine import RegoEngine
from reconciler.validation.ruleset import compile_rules, load_rule_set
from tests.support.vsphere import start_simulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def conn(vcsim):
    fp = sha1_fingerprint(vcsim.host, vcsim.port)
    c = mtv_gitops_connect("vsphere", vcsim.url, vcsim.secret(thumbprint=fp), {}, {})
    yield c
    c.close()


def test_the_fingerprint_has_the_mtv_docs_format(vcsim) -> None:
    fp = sha1_fingerprint(vcsim.host, vcsim.port)
    assert len(fp) == 59 and fp.count(":") == 19 and fp == fp.upper()


def test_tls_is_verified_by_default_and_the_thumbprint_pins_it(vcsim) -> None:
    with pytest.raises(SourceError, match="is not trusted .*put its SHA-1 fingerprint"):
        session.connect(vcsim.url, vcsim.secret())
    wrong = ":".join(["AB"] * 20)
    with pytest.raises(SourceError, match=f"not the thumbprint {wrong}"):
        session.connect(vcsim.url, vcsim.secret(thumbprint=wrong))
    si = session.connect(vcsim.url, vcsim.secret(insecureSkipVerify="true"))
    assert si.content.about.apiType == "VirtualCenter"


def test_a_wrong_password_is_a_clear_error(vcsim) -> None:
    fp = sha1_fingerprint(vcsim.host, vcsim.port)
    with pytest.raises(SourceError, match="refused the login of the user in the Provider's") as e:
        session.connect(vcsim.url, {"user": "nobody", "password": "x", "thumbprint": fp})
    assert "nobody" not in str(e.value)  # status goes to git: the user name stays in the log


def test_an_unreachable_vcenter_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match="cannot reach 127.0.0.1:9"):
        session.connect("https://127.0.0.1:9/sdk", {"user": "u", "thumbprint": "AA"})


def test_inventory_equals_what_pyvmomi_reads_directly(conn: VsphereConnection) -> None:
    from pyVmomi import vim

    inv = conn.inventory()
    content = conn.si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    direct = {vm._moId: vm for vm in view.view if not vm.config.template}
    view.Destroy()
    assert sorted(v.id for v in inv.vms) == sorted(direct)
    for vm in inv.vms:
        ref = direct[vm.id]
        assert vm.name == ref.name
        assert vm.cpus == ref.config.hardware.numCPU
        assert vm.memory_mb == ref.config.hardware.memoryMB
        assert vm.power_state == {"poweredOn": "On"}.get(ref.runtime.powerState, "Off")
        disks = [d for d in ref.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        assert [d.capacity for d in vm.disks] == [d.capacityInKB * 1024 for d in disks]
        assert [d.storage for d in vm.disks] == [d.backing.datastore._moId for d in disks]
        macs = [
            d.macAddress
            for d in ref.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualEthernetCard)
        ]
        assert [n.mac for n in vm.nics] == macs
        assert vm.host == ref.runtime.host._moId
        assert vm.concerns == ()
        assert vm.change_tracking is False  # the simulator's VMs have CBT off
    names = {s.name for s in inv.storages}
    assert len(names) == 2
    assert {n.name for n in inv.networks} >= {"VM Network", "DC0_DVPG0"}


def test_validation_documents_go_through_the_default_vsphere_rules(conn) -> None:
    inv = conn.inventory()
    docs = [conn.validation_input(vm.id) for vm in inv.vms]
    clustered = [d for d in docs if "cluster" in d.get("host", {})]
    assert clustered and all(d["host"]["cluster"]["name"] for d in clustered)
    rs = load_rule_set("vsphere", None)
    with RegoEngine() as engine:
        assert compile_rules(engine, rs).ok
        results = list(engine.evaluate([json.dumps(d) for d in docs]))
    assert all(r.ok and r.result["errors"] == [] for r in results)
    # the simulator's VMs have CBT off
    assert all(
        "vmware.changed_block_tracking.disabled" in {c["id"] for c in r.result["concerns"]}
        for r in results
    )


def test_a_thousand_vms_are_inventoried() -> None:
    sim = start_simulator(hosts=2, vms=500, datastores=1)
    try:
        fp = sha1_fingerprint(sim.host, sim.port)
        conn = mtv_gitops_connect("vsphere", sim.url, sim.secret(thumbprint=fp), {}, {})
        try:
            assert len(conn.inventory().vms) >= 1000
        finally:
            conn.close()
    finally:
        sim.stop()


def test_the_fingerprint_command_prints_what_the_secret_needs(vcsim) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "fingerprint", f"{vcsim.host}:{vcsim.port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == sha1_fingerprint(vcsim.host, vcsim.port)
