"""A warm vSphere plan against the simulator, through git: the initial copy and the cutover
proposal, a precopy round of what the guest wrote, then the cutover once the branch is merged."""

from __future__ import annotations

import time

import git
import pytest

from tests.integration.conftest import USER_ENV, small_vm
from tests.integration.test_vsphere import PLAN, _map_ids, _vms, _vsphere_repo
from tests.plugins.vsphere.conftest import start_simulator
from tests.plugins.vsphere.datastore_files import add_disk, wait, write_flat_disk
from tests.plugins.vsphere.test_cbt import guest_write
from tests.plugins.vsphere.test_disks import connect, content, datastore

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
INTERVAL = 2.0  # seconds between precopy rounds (.mtv-gitops.yaml warm.precopyIntervalSeconds)
BRANCH = "mtv-gitops/cutover/openshift-mtv/vs-plan-1"
CONFIG = f"""statusCommitSeconds: 0
transfer: {{chunkMiB: 1}}
warm: {{precopyIntervalSeconds: {INTERVAL}}}
"""


def _warm_source(sim) -> tuple[str, str, str, bytearray, list[bytes]]:
    """DC0_H0_VM0 with CBT on and an 8 MiB disk of known content (its other disks too)."""
    from pyVmomi import vim

    conn = connect(sim)
    vm = _vms(conn.si)["DC0_H0_VM0"]
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    disk = add_disk(conn.si, vm, 8 * MiB, datastore(conn, "LocalDS_0"))
    others = []
    for i, d in enumerate(vm.config.hardware.device):
        if isinstance(d, vim.vm.device.VirtualDisk) and d.key != disk.key:
            blob = content(d.capacityInKB * 1024, seed=40 + i)
            write_flat_disk(sim, d.backing.fileName, blob)
            others.append(blob)
    data = bytearray(content(8 * MiB, seed=5))
    write_flat_disk(sim, disk.backing.fileName, bytes(data))
    conn.close()
    return vm._moId, str(disk.key), disk.backing.fileName, data, others


def _write(sim, disk_file: str, data: bytearray, offset: int, blob: bytes) -> None:
    guest_write(sim, disk_file, offset, blob)
    data[offset : offset + len(blob)] = blob


def _vm_status(ws) -> dict:
    [vm] = ws.status("plan", "vs-plan")["status"]["migration"]["vms"]
    return vm


def _snapshots(si, vm) -> list:
    """The VM's snapshot tree, read through the property collector (reading ``vm.snapshot``
    straight makes the simulator panic when the VM has none)."""
    from pyVmomi import vmodl

    pc = si.RetrieveContent().propertyCollector
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=vm)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(vm), pathSet=["snapshot"])],
    )
    [found] = pc.RetrieveContents([spec])
    return [p.val for p in found.propSet if p.val is not None and p.val.rootSnapshotList]


def _merge_as_reviewer(ws) -> None:
    repo = git.Repo(ws.clone)
    with repo.git.custom_environment(**USER_ENV):
        repo.git.pull("--rebase", "origin", "main")
        repo.git.fetch("origin", BRANCH)
        repo.git.merge("--no-ff", "-m", "Merge the cutover", f"origin/{BRANCH}")
        repo.git.push("origin", "HEAD:main")


def test_a_warm_plan_copies_rounds_and_cuts_over_when_the_branch_is_merged(
    workspace_factory, tmp_path
) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        vm_id, key, disk_file, data, others = _warm_source(sim)
        plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
        plan = plan.replace("  vms:\n", "  vms:\n    - name: DC0_H0_VM0\n")
        plan = plan.replace(
            "  targetNamespace: vs-vms\n", "  targetNamespace: vs-vms\n  warm: true\n"
        )
        ws = workspace_factory([small_vm("steady", 1)])
        env = _vsphere_repo(ws, sim, tmp_path, plan.format(), _map_ids(sim))
        ws.user_commit({".mtv-gitops.yaml": CONFIG}, "precopy every few seconds")

        # pass 1: initial snapshot, full copy, the VM waits; the cutover is proposed
        proc = ws.reconcile("--once", env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vm = _vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        warm = vm["warm"]
        assert warm["precopies"] == [] and warm["nextPrecopyAt"]
        assert warm["cutoverBranch"] == BRANCH
        assert BRANCH in warm["cutoverInstruction"]
        remote = git.Repo(ws.remote)
        diff = remote.git.diff(f"main...{BRANCH}", "--unified=0")
        changed = [
            line
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        assert len(changed) == 1 and changed[0].startswith("+  cutover: "), diff
        assert remote.git.diff(f"main...{BRANCH}", "--name-only").split() == ["plans/vs-plan.yaml"]

        # the guest writes; pass 2 after the interval copies only what changed
        _write(sim, disk_file, data, 1 * MiB, b"\x11" * 4096)
        _write(sim, disk_file, data, 5 * MiB + 512, b"\x22" * 65536)
        time.sleep(INTERVAL + 0.5)
        proc = ws.reconcile("--once", env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vm = _vm_status(ws)
        assert vm["phase"] == "CopyingPaused", vm
        [round1] = vm["warm"]["precopies"]
        assert round1["round"] == 1 and round1["extents"] == 2
        assert round1["chunks"] == 2  # two 1 MiB chunks touched
        assert 4096 + 65536 <= round1["bytes"] <= 2 * MiB
        assert round1["start"] <= round1["end"]

        # more writes, the reviewer merges: pass 3 cuts over
        _write(sim, disk_file, data, 7 * MiB, b"\x33" * 8192)
        _merge_as_reviewer(ws)
        proc = ws.reconcile("--once", env=env, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        vm = _vm_status(ws)
        assert vm["phase"] == "Completed", vm
        warm = vm["warm"]
        assert warm["precopies"][-1].get("final") is True
        assert 8192 <= warm["cutoverBytes"] <= MiB
        assert warm["downtimeSeconds"] >= 0 and warm["powerOffAt"]
        steps = {s["name"]: s["phase"] for s in vm["pipeline"]}
        for name in ("PowerOffSource", "CreateFinalSnapshot", "CopyFinalDelta", "CreateVM"):
            assert steps[name] == "Completed"

        disks = sorted((ws.cluster / "vs-vms" / "disks").glob("dc0-h0-vm0-disk-*.img"))
        blobs = [d.read_bytes() for d in disks]
        assert bytes(data) in blobs  # byte-identical to the source's final content
        assert sorted(blobs) == sorted([bytes(data), *others])
        manifest = (ws.cluster / "vs-vms" / "virtualmachines" / "dc0-h0-vm0.yaml").read_text()
        assert "runStrategy: Always" in manifest  # the source ran

        conn = connect(sim)
        source = _vms(conn.si)["DC0_H0_VM0"]
        assert source.runtime.powerState == "poweredOff"
        assert _snapshots(conn.si, source) == []  # no mtv-gitops snapshot left
        assert source._moId == vm_id
        conn.close()
        assert key
    finally:
        sim.stop()
