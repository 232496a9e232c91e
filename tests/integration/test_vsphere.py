"""A vSphere plan cold-migrated from the simulator to the local target, end to end through git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.sources import sha1_fingerprint
from tests.support.vsphere import (
    Simulator,
    add_disk,
    connect,
    content,
    datastore,
    start_simulator,
    wait,
    write_flat_disk,
)
from tests.support.vsphere_repo import PLAN, map_ids, vms_by_name, vsphere_repo
from tests.support.workspace import small_vm

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def prepare_source(sim: Simulator) -> dict:
    """Shape two simulator VMs like real ones and give every disk known content:
    "Web Server_01.Prod" (on, a name to sanitise, NICs on a port group and on a standard
    network, a second disk on
    a second datastore) and DC0_C0_RP0_VM1 (powered off)."""
    from pyVmomi import vim

    conn = connect(sim)
    si = conn.si
    vms = vms_by_name(si)
    web, off = vms["DC0_C0_RP0_VM0"], vms["DC0_C0_RP0_VM1"]
    wait(web.Rename_Task("Web Server_01.Prod"))
    vm_net = next(n for n in web.runtime.host.network if n.name == "VM Network")
    nic = vim.vm.device.VirtualVmxnet3(  # its first NIC is on the DC0_DVPG0 port group
        key=-1,
        addressType="manual",
        macAddress="00:50:56:aa:bb:02",
        backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(
            network=vm_net, deviceName="VM Network"
        ),
    )
    spec = vim.vm.ConfigSpec(
        firmware="efi",
        numCPUs=4,
        numCoresPerSocket=2,
        memoryMB=3072,
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)],
    )
    wait(web.ReconfigVM_Task(spec))
    add_disk(si, web, 8 * MiB, datastore(conn, "LocalDS_1"))
    wait(off.PowerOffVM_Task())
    data = {}
    for vm in (web, off):
        disks = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        data[vm.name] = []
        for i, d in enumerate(disks):
            blob = content(d.capacityInKB * 1024, seed=len(data) * 10 + i)
            write_flat_disk(sim, d.backing.fileName, blob)
            data[vm.name].append(blob)
    out = {
        "data": data,
        "off_vm_id": off._moId,
        "vm_network_id": vm_net._moId,
        "ds1_id": datastore(conn, "LocalDS_1")._moId,
        "macs": [
            d.macAddress
            for d in web.config.hardware.device
            if isinstance(d, vim.vm.device.VirtualEthernetCard)
        ],
    }
    conn.close()
    return out


@pytest.fixture
def vcsim_cold():
    sim = start_simulator(hosts=2, vms=2, datastores=2, password="vc-Secret-7781")
    yield sim
    sim.stop()


def test_a_vsphere_plan_cold_migrates_to_the_target(workspace_factory, vcsim_cold, tmp_path):
    sim = vcsim_cold
    src = prepare_source(sim)
    ws = workspace_factory([small_vm("steady", 1)])
    env = vsphere_repo(ws, sim, tmp_path, PLAN.format(**src), src)
    listed = ws.cli("inventory", str(ws.clone), "--provider", "vcenter", env=env, check=True)
    assert "Web Server_01.Prod" in listed.stdout and "LocalDS_1" in listed.stdout
    as_json = ws.cli("inventory", str(ws.clone), "-p", "vcenter", "--json", env=env, check=True)
    inv = json.loads(as_json.stdout)
    assert {v["name"] for v in inv["vms"]} >= {"Web Server_01.Prod", "DC0_H0_VM0"}
    assert sim.password not in listed.stdout + as_json.stdout
    bad = ws.cli("inventory", str(ws.clone), "-p", "vcenter")  # no secrets file
    assert bad.returncode == 3 and "vcenter-creds" in bad.stderr

    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sim.password not in proc.stdout + proc.stderr
    plan = ws.status("plan", "vs-plan")["status"]
    vms = {v["name"]: v for v in plan["migration"]["vms"]}
    assert {n: v["phase"] for n, v in vms.items()} == {
        "Web Server_01.Prod": "Completed",
        "DC0_C0_RP0_VM1": "Completed",
    }
    steps = {s["name"]: s for s in vms["Web Server_01.Prod"]["pipeline"]}
    assert [t["verified"] for t in steps["CopyDisks"]["tasks"]] == [True, True]
    ids = {c.get("id") for v in plan["validation"]["vms"] for c in v["concerns"]}
    assert "vmware.changed_block_tracking.disabled" in ids  # the default vSphere rules ran

    ns = ws.cluster / "vs-vms"
    load = YAML(typ="safe").load
    web = load((ns / "virtualmachines" / "webserver-01prod.yaml").read_text())
    off = load((ns / "virtualmachines" / "dc0-c0-rp0-vm1.yaml").read_text())
    assert web["spec"]["runStrategy"] == "Always"  # the source was on
    assert off["spec"]["runStrategy"] == "Halted"  # the source was off
    domain = web["spec"]["template"]["spec"]["domain"]
    assert [i["macAddress"] for i in domain["devices"]["interfaces"]] == src["macs"]
    assert web["spec"]["template"]["spec"]["networks"] == [
        {"name": "net-0", "multus": {"networkName": "vs-vms/backend"}},
        {"name": "net-1", "pod": {}},
    ]
    assert "efi" in domain["firmware"]["bootloader"]  # the source's firmware
    assert domain["cpu"] == {"sockets": 2, "cores": 2, "threads": 1}
    assert domain["memory"] == {"guest": "3072Mi"}
    off_domain = off["spec"]["template"]["spec"]["domain"]
    assert off_domain["firmware"]["bootloader"] == {"bios": {}}
    for target, source in (
        ("webserver-01prod", "Web Server_01.Prod"),
        ("dc0-c0-rp0-vm1", "DC0_C0_RP0_VM1"),
    ):
        for i, blob in enumerate(src["data"][source]):
            assert (ns / "disks" / f"{target}-disk-{i}.img").read_bytes() == blob
    classes = [
        load((ns / "pvcs" / f"webserver-01prod-disk-{i}.yaml").read_text())["spec"][
            "storageClassName"
        ]
        for i in range(2)
    ]
    assert classes == ["standard", "fast"]  # two datastores, two storage classes
    assert [v["phase"] for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]] == [
        "Completed"
    ]  # the OVA plan beside it ran


def _spans(ws) -> dict[str, tuple[str, str]]:
    import sqlite3

    with sqlite3.connect(ws.state / "progress.db") as con:
        rows = con.execute("SELECT vm_name, started, completed FROM vms").fetchall()
    return {name: (s, c) for name, s, c in rows}


def _overlap(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Ran together for more than the same second (times have whole seconds)."""
    return a[0] < b[1] and b[0] < a[1]


def test_vms_in_flight_are_counted_per_esxi_host(workspace_factory, tmp_path) -> None:
    """controller_max_vm_inflight: 1 with two VMs on host A and one on host B: the two on A
    never run together, the one on B runs beside them."""
    from pyVmomi import vim

    from tests.support.workspace import limit_and_throttle

    sim = start_simulator(hosts=2, vms=3, datastores=2)
    try:
        conn = connect(sim)
        vms = vms_by_name(conn.si)
        chosen = ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM2", "DC0_C0_RP0_VM1"]
        hosts = [vms[n].runtime.host._moId for n in chosen]
        assert hosts[0] == hosts[1] != hosts[2]  # the simulator's placement
        for i, name in enumerate(chosen):
            vm = vms[name]
            add_disk(conn.si, vm, 12 * MiB, datastore(conn, "LocalDS_0"))
            for d in vm.config.hardware.device:
                if isinstance(d, vim.vm.device.VirtualDisk):
                    write_flat_disk(sim, d.backing.fileName, content(d.capacityInKB * 1024, i))
        conn.close()
        plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
        plan = plan.replace("  vms:\n", "  vms:\n" + "".join(f"    - name: {n}\n" for n in chosen))
        ws = workspace_factory([small_vm("steady", 1)])
        env = vsphere_repo(ws, sim, tmp_path, plan.format(), map_ids(sim))
        limit_and_throttle(ws, 1, 4)  # about 3 s of copying per VM
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        sim.stop()
    spans = _spans(ws)
    a1, a2, b = (spans[n] for n in chosen)
    assert not _overlap(a1, a2)  # same ESXi host: one at a time
    assert _overlap(b, a1) or _overlap(b, a2)  # another host: its own slot
    plan_status = ws.status("plan", "vs-plan")["status"]
    assert {v["phase"] for v in plan_status["migration"]["vms"]} == {"Completed"}


def test_a_vm_whose_disks_cannot_be_read_fails_before_it_is_powered_off(
    workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        ids = map_ids(sim)
        plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
        plan = plan.replace("  vms:\n", "  vms:\n    - name: DC0_H0_VM0\n")
        ws = workspace_factory([small_vm("steady", 1)])
        env = vsphere_repo(ws, sim, tmp_path, plan.format(), ids)
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 1
        assert "is empty: not a VMDK descriptor" in proc.stdout + proc.stderr
        vm = ws.status("plan", "vs-plan")["status"]["migration"]["vms"][0]
        assert vm["phase"] == "Failed" and vm["error"]["phase"] == "StorePowerState"
        conn = connect(sim)
        assert vms_by_name(conn.si)["DC0_H0_VM0"].runtime.powerState == "poweredOn"  # left running
        conn.close()
    finally:
        sim.stop()


def test_a_refused_certificate_or_login_is_a_provider_condition(workspace_factory, tmp_path):
    sim = start_simulator(hosts=1, vms=1, datastores=2, password="vc-Secret-7781")
    try:
        ids = map_ids(sim)
        plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
        plan = plan.replace("  vms:\n", "  vms:\n    - name: DC0_H0_VM0\n")
        ws = workspace_factory([small_vm("steady", 1)])
        env = vsphere_repo(ws, sim, tmp_path, plan.format(), ids)
        secrets = Path(env["MTV_GITOPS_SECRETS"])
        wrong = ":".join(["AB"] * 20)
        good = sha1_fingerprint(sim.host, sim.port)
        secrets.write_text(secrets.read_text().replace(good, wrong))
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 1
        assert sim.password not in proc.stdout + proc.stderr
        provider = ws.status("provider", "vcenter")["status"]
        text = " ".join(c["message"] for c in provider["conditions"])
        assert f"not the thumbprint {wrong}" in text
        plan_conds = {c["type"] for c in ws.status("plan", "vs-plan")["status"]["conditions"]}
        assert "SourceProviderNotReady" in plan_conds
        secrets.write_text(secrets.read_text().replace(wrong, good).replace(sim.password, "not-it"))
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 1
        provider = ws.status("provider", "vcenter")["status"]
        text = " ".join(c["message"] for c in provider["conditions"])
        assert "refused the login of the user in the Provider's secret" in text
        assert f"login of {sim.user!r}" not in text  # the user name stays out of git
        assert "not-it" not in proc.stdout + proc.stderr + text
    finally:
        sim.stop()
