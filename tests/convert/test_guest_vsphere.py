"""The real guest on the vCenter simulator's datastore (its disk as a VMFS flat extent, on a
SCSI controller, with a VMXNET3 NIC), migrated cold onto the local target: converted, and it
boots on virtio."""

from __future__ import annotations

import os

import pytest

from tests.support.guest import (
    Guest,
    boot,
    changed_runs,
    copy_sparse,
    file_in_guest,
    write_in_guest,
)
from tests.support.vsphere import (
    add_disk,
    connect,
    datastore,
    guest_write,
    start_simulator,
    wait,
    write_flat_disk,
)
from tests.support.vsphere_repo import (
    CONFIG,
    make_round_due,
    map_ids,
    merge_as_reviewer,
    reconcile_once,
    vm_status,
    vms_by_name,
    vsphere_repo,
)
from tests.support.workspace import small_vm

pytestmark = [
    pytest.mark.integration,
    pytest.mark.guest,
    # the real guest's whole path runs once in make test (from the OVA, test_guest_boot.py);
    # this second one, as long again, runs in make demo-convert
    pytest.mark.skipif(
        not os.environ.get("MTV_GITOPS_GUEST_ALL"),
        reason="set MTV_GITOPS_GUEST_ALL=1 (make demo-convert does) to run it",
    ),
]

PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {name: vs-plan, namespace: openshift-mtv}
spec:
  targetNamespace: vs-vms
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    network: {name: vs-net, namespace: openshift-mtv}
    storage: {name: vs-sto, namespace: openshift-mtv}
  vms:
    - name: debian-vmware
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {name: vs-plan-1, namespace: openshift-mtv}
spec:
  plan: {name: vs-plan, namespace: openshift-mtv}
"""


def guest_on_simulator(sim, guest: Guest, cbt: bool = False) -> str:
    """The simulator's first VM becomes the guest: its disk swapped for one holding it (with
    changed block tracking on for a warm plan). Returns the disk's file name."""
    from pyVmomi import vim

    conn = connect(sim)
    vm = vms_by_name(conn.si)["DC0_C0_RP0_VM0"]
    wait(vm.Rename_Task("debian-vmware"))
    if cbt:
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    old = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    wait(
        vm.ReconfigVM_Task(
            vim.vm.ConfigSpec(
                deviceChange=[
                    vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in old
                ]
            )
        )
    )
    disk = add_disk(conn.si, vm, guest.disk.stat().st_size, datastore(conn, "LocalDS_0"))
    write_flat_disk(sim, disk.backing.fileName, guest.disk.read_bytes())
    conn.close()
    return disk.backing.fileName


def test_the_guest_from_the_vcenter_simulator_is_converted_and_boots(
    guest: Guest, workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        ids = map_ids(sim)  # read while the first VM has its simulator name
        guest_on_simulator(sim, guest)
        ws = workspace_factory([small_vm("steady", 1)])  # the OVA plan beside it
        env = vsphere_repo(ws, sim, tmp_path, PLAN, ids)
        proc = ws.reconcile("--once", env=env, timeout=1800)
    finally:
        sim.stop()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    vm = ws.status("plan", "vs-plan")["status"]["migration"]["vms"][0]
    assert vm["phase"] == "Completed", vm
    convert = {s["name"]: s for s in vm["pipeline"]}["ConvertGuest"]
    assert convert["phase"] == "Completed", convert
    assert convert["guest"]["virtio"] == {"disk": True, "network": True}
    disk = ws.cluster / "vs-vms" / "disks" / "debian-vmware-disk-0.img"
    assert not file_in_guest(disk, "/usr/bin/vmtoolsd")
    booted = boot(disk, tmp_path / "converted.console")
    assert booted.reached, booted.tail


def test_a_warm_migration_of_the_guest_carries_its_writes_converts_and_boots(
    guest: Guest, workspace_factory, tmp_path
) -> None:
    """Precopy, a file the running guest writes, a second round of just those blocks, the
    cutover once merged, then ConvertGuest after the final delta: the file is there and the
    converted disk boots."""
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        ids = map_ids(sim)
        disk_file = guest_on_simulator(sim, guest, cbt=True)
        ws = workspace_factory([small_vm("steady", 1)])
        warm = "  targetNamespace: vs-vms\n  warm: true\n"
        plan = PLAN.replace("  targetNamespace: vs-vms\n", warm)
        env = vsphere_repo(ws, sim, tmp_path, plan, ids)
        ws.user_commit({".mtv-gitops.yaml": CONFIG}, "precopy when the test says")

        reconcile_once(ws, env)  # the full copy; the VM waits, the cutover is proposed
        assert vm_status(ws)["phase"] == "CopyingPaused", vm_status(ws)

        # the guest writes a file; its blocks reach the simulator as guest writes (CBT)
        written = tmp_path / "written.img"
        with written.open("wb") as out:
            out.truncate(guest.disk.stat().st_size)
            copy_sparse(guest.disk, out)
        note = b"written between precopy rounds\n"
        write_in_guest(written, "/etc/mtv-gitops-warm", note, tmp_path)
        runs = changed_runs(guest.disk, written)
        assert runs
        for offset, blob in runs:
            guest_write(sim, disk_file, offset, blob)
        make_round_due(ws)
        reconcile_once(ws, env)
        vm = vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        round1 = vm["warm"]["precopies"][-1]
        assert round1["round"] == 1
        assert round1["bytes"] >= sum(len(b) for _, b in runs)

        merge_as_reviewer(ws)
        proc = ws.reconcile("--once", env=env, timeout=3600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    finally:
        sim.stop()
    vm = vm_status(ws)
    assert vm["phase"] == "Completed", vm
    steps = {s["name"]: s for s in vm["pipeline"]}
    assert steps["CopyFinalDelta"]["phase"] == "Completed"
    convert = steps["ConvertGuest"]
    assert convert["phase"] == "Completed", convert
    assert convert["guest"]["virtio"] == {"disk": True, "network": True}
    disk = ws.cluster / "vs-vms" / "disks" / "debian-vmware-disk-0.img"
    assert file_in_guest(disk, "/etc/mtv-gitops-warm")  # the guest's write crossed over
    assert not file_in_guest(disk, "/usr/bin/vmtoolsd")
    booted = boot(disk, tmp_path / "converted.console")
    assert booted.reached, booted.tail
