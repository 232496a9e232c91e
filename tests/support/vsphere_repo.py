"""vSphere repos for integration tests: a Provider on the simulator, maps and plans, and the warm
plan helpers (CBT on, guest writes tracked, a reviewer merging the cutover)."""

from __future__ import annotations

import time

import git

from reconciler.progress.store import ProgressStore
from reconciler.sources import sha1_fingerprint
from tests.support.vsphere import (
    MiB,
    add_disk,
    connect,
    content,
    datastore,
    guest_write,
    wait,
    write_flat_disk,
)
from tests.support.workspace import USER_ENV, small_vm

PROVIDER = """apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata:
  name: vcenter
  namespace: openshift-mtv
spec:
  type: vsphere
  url: {url}
  secret:
    name: vcenter-creds
    namespace: openshift-mtv
"""


MAPS = """apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {{name: vs-net, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: vcenter, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    - source: {{id: {vm_network_id}}}
      destination: {{type: pod}}
    - source: {{name: DC0_DVPG0}}
      destination: {{type: multus, name: backend, namespace: vs-vms}}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {{name: vs-sto, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: vcenter, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    - source: {{name: LocalDS_0}}
      destination: {{storageClass: standard}}
    - source: {{id: {ds1_id}}}
      destination: {{storageClass: fast}}
"""


PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {{name: vs-plan, namespace: openshift-mtv}}
spec:
  targetNamespace: vs-vms
  provider:
    source: {{name: vcenter, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: vs-net, namespace: openshift-mtv}}
    storage: {{name: vs-sto, namespace: openshift-mtv}}
  vms:
    - name: Web Server_01.Prod
    - id: {off_vm_id}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {{name: vs-plan-1, namespace: openshift-mtv}}
spec:
  plan: {{name: vs-plan, namespace: openshift-mtv}}
"""


def vms_by_name(si) -> dict:
    from pyVmomi import vim

    c = si.RetrieveContent()
    view = c.viewManager.CreateContainerView(c.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()


def vsphere_repo(ws, sim, tmp_path, plan: str, src: dict) -> dict:
    secrets = tmp_path / "secrets.yaml"
    fp = sha1_fingerprint(sim.host, sim.port)
    secrets.write_text(
        f"openshift-mtv/vcenter-creds:\n  user: {sim.user}\n  password: {sim.password}\n"
        f'  thumbprint: "{fp}"\n'
    )
    ws.user_commit(
        {
            "providers/vcenter.yaml": PROVIDER.format(url=sim.url),
            "maps/vsphere.yaml": MAPS.format(**src),
            "plans/vs-plan.yaml": plan,
        },
        "a vSphere plan",
    )
    return {"MTV_GITOPS_SECRETS": str(secrets)}


def map_ids(sim) -> dict:
    conn = connect(sim)
    web = vms_by_name(conn.si)["DC0_C0_RP0_VM0"]
    ids = {
        "vm_network_id": next(n for n in web.runtime.host.network if n.name == "VM Network")._moId,
        "ds1_id": datastore(conn, "LocalDS_1")._moId,
    }
    conn.close()
    return ids


# seconds between precopy rounds (.mtv-gitops.yaml warm.precopyIntervalSeconds): never due by
# the clock within a test; a test makes the next round due with make_round_due()
INTERVAL = 3600.0


BRANCH = "mtv-gitops/cutover/openshift-mtv/vs-plan-1"


def warm_config(interval: float) -> str:
    """The warm tests' repo config: status at once, 1 MiB chunks, rounds *interval* s apart."""
    return f"""statusCommitSeconds: 0
transfer: {{chunkMiB: 1}}
warm: {{precopyIntervalSeconds: {interval}}}
"""


CONFIG = warm_config(INTERVAL)


def warm_source(
    sim, name: str = "DC0_H0_VM0", seed: int = 5
) -> tuple[str, str, str, bytearray, list[bytes]]:
    """A VM with CBT on and an 8 MiB disk of known content (its other disks too)."""
    from pyVmomi import vim

    conn = connect(sim)
    vm = vms_by_name(conn.si)[name]
    wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
    disk = add_disk(conn.si, vm, 8 * MiB, datastore(conn, "LocalDS_0"))
    others = []
    for i, d in enumerate(vm.config.hardware.device):
        if isinstance(d, vim.vm.device.VirtualDisk) and d.key != disk.key:
            blob = content(d.capacityInKB * 1024, seed=40 + seed + i)
            write_flat_disk(sim, d.backing.fileName, blob)
            others.append(blob)
    data = bytearray(content(8 * MiB, seed=seed))
    write_flat_disk(sim, disk.backing.fileName, bytes(data))
    conn.close()
    return vm._moId, str(disk.key), disk.backing.fileName, data, others


def write_tracked(sim, disk_file: str, data: bytearray, offset: int, blob: bytes) -> None:
    guest_write(sim, disk_file, offset, blob)
    data[offset : offset + len(blob)] = blob


def vm_status(ws) -> dict:
    [vm] = ws.status("plan", "vs-plan")["status"]["migration"]["vms"]
    return vm


def snapshot_tree(si, vm) -> list:
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


def merge_as_reviewer(ws) -> None:
    repo = git.Repo(ws.clone)
    with repo.git.custom_environment(**USER_ENV):
        repo.git.pull("--rebase", "origin", "main")
        repo.git.fetch("origin", BRANCH)
        repo.git.merge("--no-ff", "-m", "Merge the cutover", f"origin/{BRANCH}")
        repo.git.push("origin", "HEAD:main")


PLAN_FILE = "plans/vs-plan.yaml"


def warm_plan(*names: str) -> str:
    plan = PLAN.replace("    - name: Web Server_01.Prod\n    - id: {off_vm_id}\n", "")
    vms = "".join(f"    - name: {n}\n" for n in names)
    plan = plan.replace("  vms:\n", "  vms:\n" + vms)
    return plan.replace("  targetNamespace: vs-vms\n", "  targetNamespace: vs-vms\n  warm: true\n")


def warm_workspace(workspace_factory, tmp_path, sim, *names: str, interval: float = INTERVAL):
    ws = workspace_factory([small_vm("steady", 1)])
    env = vsphere_repo(ws, sim, tmp_path, warm_plan(*names).format(), map_ids(sim))
    ws.user_commit({".mtv-gitops.yaml": warm_config(interval)}, "precopy every few seconds")
    return ws, env


def reconcile_once(ws, env) -> None:
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def set_cutover(ws, value: str | None, message: str) -> str:
    """The user edits spec.cutover in the Migration on main (the only line touched)."""
    git.Repo(ws.clone).git.pull("--rebase", "origin", "main")
    text = (ws.clone / PLAN_FILE).read_text()
    lines = [line for line in text.splitlines() if not line.startswith("  cutover:")]
    if value is not None:
        at = lines.index("  plan: {name: vs-plan, namespace: openshift-mtv}") + 1
        lines.insert(at, f'  cutover: "{value}"')
    return ws.user_commit({PLAN_FILE: "\n".join(lines) + "\n"}, message)


def our_snapshots(sim, name: str) -> list[str]:
    conn = connect(sim)
    try:
        tree = snapshot_tree(conn.si, vms_by_name(conn.si)[name])
        todo = list(tree[0].rootSnapshotList) if tree else []
        names = []
        while todo:
            node = todo.pop()
            names.append(node.name)
            todo += list(node.childSnapshotList or [])
        return names
    finally:
        conn.close()


def remove_snapshot(sim, vm_name: str, snap_name: str) -> None:
    """Remove one snapshot by name, as a user would in vCenter."""
    conn = connect(sim)
    try:
        tree = snapshot_tree(conn.si, vms_by_name(conn.si)[vm_name])
        todo = list(tree[0].rootSnapshotList) if tree else []
        while todo:
            node = todo.pop()
            if node.name == snap_name:
                # the simulator's task names the snapshot as its entity, which pyvmomi cannot
                # read back: wait for the snapshot to be gone instead of for the task
                node.snapshot.RemoveSnapshot_Task(removeChildren=False)
                deadline = time.monotonic() + 120  # a hang guard
                while snap_name in our_snapshots(sim, vm_name):
                    assert time.monotonic() < deadline, f"{snap_name} was never removed"
                    time.sleep(0.05)
                return
            todo += list(node.childSnapshotList or [])
        raise AssertionError(f"no snapshot {snap_name} on {vm_name}")
    finally:
        conn.close()


def make_round_due(ws, plan: str = "openshift-mtv/vs-plan") -> None:
    """Move the plan's warm VMs past their next precopy round, as if the interval had passed:
    the time the progress store holds for it goes into the past (as tests/pipeline/test_warm.py
    does).  A round is then due at the next pass however slowly the machine runs, and never
    before: no test waits on the clock for a round."""
    store = ProgressStore(ws.state / "progress.db")
    try:
        for rec in store.vms(plan):
            if rec.warm and rec.warm.get("nextPrecopyAt"):
                rec.warm["nextPrecopyAt"] = "2000-01-01T00:00:00Z"
                store.put_vm(rec)
    finally:
        store.close()
