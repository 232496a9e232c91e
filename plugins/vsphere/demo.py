"""The source of ``mtv-gitops demo --warm``: one running VM in the vCenter simulator.

The simulator (:mod:`plugins.vsphere.simulator`, built once from Debian's Go packages) runs one
powered-on VM with changed block tracking and a disk of known, scattered content.  The demo repo
holds a vSphere Provider (its login goes to ``DIR/secrets.yaml``, never to git), maps and a
``warm: true`` Plan.  Between the core's reconciler passes the guest writes (:data:`WRITES`), so
each precopy round and the final delta have something to copy; :meth:`VsphereWarmDemo.disks`
gives the digest of what the disk holds after every write.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugins.ova.factory import scattered, semi_random
from plugins.vsphere.simulator import Simulator, SimulatorUnavailable, simulator_binary
from plugins.vsphere.simulator import start_simulator as _start_simulator
from plugins.vsphere.simulator.disks import add_disk, guest_write, wait, write_flat_disk
from reconciler.sources import SourceError, sha1_fingerprint
from reconciler.transfer.digest import digest_of_bytes

KIB, MIB = 1024, 1024**2
NAMESPACE, PLAN, MIGRATION = "openshift-mtv", "warm-plan", "warm-plan-1"
TARGET_NS = "demo-warm"
VM_NAME = "orders-db"  # the simulator's DC0_H0_VM0, renamed
DISK_SIZE = 128 * MIB
INTERVAL = 3  # seconds between precopy rounds
SCATTERED = (DISK_SIZE, 16 * MIB, 8, 7)  # the disk's content before the guest writes

# what the guest writes: before round 1, before round 2, and after the last round (the
# final delta copied while the VM is down); (offset, length, seed)
WRITES = {
    1: [(3 * MIB, 4 * KIB, 11), (40 * MIB + 512, 64 * KIB, 12), (100 * MIB, MIB, 13)],
    2: [(3 * MIB + 8 * KIB, 16 * KIB, 21), (77 * MIB, 256 * KIB, 22)],
    3: [(12 * MIB, 8 * KIB, 31), (120 * MIB + 4 * KIB, 4 * KIB, 32)],
}

FILES = {
    ".mtv-gitops.yaml": f"""# Settings of this repo for mtv-gitops
authorName: mtv-gitops
authorEmail: mtv-gitops@localhost
statusCommitSeconds: 0
transfer: {{chunkMiB: 1}}
warm: {{precopyIntervalSeconds: {INTERVAL}}}
""",
    "providers/providers.yaml": """# Source: the vCenter simulator `mtv-gitops demo --warm` started;
# its login is in DIR/secrets.yaml (openshift-mtv/vcenter-creds), never in git.
apiVersion: forklift.konveyor.io/v1beta1
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
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata:
  name: host
  namespace: openshift-mtv
spec:
  type: openshift
  url: ""
""",
    "maps/maps.yaml": """apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {name: warm-net, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: DC0_DVPG0}
      destination: {type: pod}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {name: warm-sto, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: LocalDS_0}
      destination: {storageClass: standard}
""",
    f"plans/{PLAN}.yaml": f"""apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata: {{name: {PLAN}, namespace: {NAMESPACE}}}
spec:
  targetNamespace: {TARGET_NS}
  warm: true
  provider:
    source: {{name: vcenter, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: warm-net, namespace: openshift-mtv}}
    storage: {{name: warm-sto, namespace: openshift-mtv}}
  vms:
    - name: {VM_NAME}
""",
    f"migrations/{MIGRATION}.yaml": f"""apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {{name: {MIGRATION}, namespace: {NAMESPACE}}}
spec:
  plan: {{name: {PLAN}, namespace: {NAMESPACE}}}
""",
}


def initial_content() -> bytearray:
    """The disk before the guest writes: scattered data, holes between."""
    data = bytearray(DISK_SIZE)
    for offset, blob in scattered(*SCATTERED):
        data[offset : offset + len(blob)] = blob
    return data


def final_content() -> bytes:
    """The disk after every guest write, in order: what the target must hold at the end."""
    data = initial_content()
    for step in sorted(WRITES):
        for offset, length, seed in WRITES[step]:
            data[offset : offset + length] = semi_random(length, seed)
    return bytes(data)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _find(si: Any, kind: Any, name: str) -> Any:
    c = si.RetrieveContent()
    view = c.viewManager.CreateContainerView(c.rootFolder, [kind], True)
    try:
        return next(o for o in view.view if o.name == name)
    finally:
        view.Destroy()


class VsphereWarmDemo:
    """The simulator's VM as a :class:`reconciler.sources.WarmDemoSource`."""

    title = "Plan: a warm migration of orders-db from vCenter"
    plan = f"{NAMESPACE}/{PLAN}"
    migration = f"{NAMESPACE}/{MIGRATION}"
    target_namespace = TARGET_NS

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.sim: Simulator | None = None
        self.disk_file = ""  # "[LocalDS_0] DC0_H0_VM0/....vmdk"
        self.data = initial_content()  # kept in step with every guest write
        self._log_file: Any = None

    def start(self, log: Callable[[str], None]) -> None:
        """Build the simulator (once), start it, and shape its VM: renamed, CBT on, one
        128 MiB disk of scattered data, running."""
        try:
            simulator_binary(log=log)
        except SimulatorUnavailable as exc:
            raise SourceError(str(exc)) from exc
        self._log_file = (self.workspace / "simulator.log").open("w")
        self.sim = _start_simulator(hosts=1, vms=1, datastores=1, stderr=self._log_file)
        self._prepare_vm()
        log(
            f"vCenter simulator at {self.sim.url}: VM {VM_NAME} running, changed block tracking "
            f"on, one {_size(DISK_SIZE)} disk holding 16 MiB of data ({self.disk_file}); "
            f"simulator log: {self._log_file.name}"
        )

    def _connect(self) -> Any:
        from pyVim.connect import SmartConnect

        assert self.sim is not None
        return SmartConnect(
            host=self.sim.host,
            port=self.sim.port,
            user=self.sim.user,
            pwd=self.sim.password,
            disableSslCertValidation=True,
        )

    def _prepare_vm(self) -> None:
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        assert self.sim is not None
        si = self._connect()
        try:
            vm = _find(si, vim.VirtualMachine, "DC0_H0_VM0")
            wait(vm.Rename_Task(VM_NAME))
            wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
            old = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
            disk = add_disk(si, vm, DISK_SIZE, _find(si, vim.Datastore, "LocalDS_0"))
            if old:  # the simulator's 1 MiB disk goes: one disk, the one the guest writes to
                spec = vim.vm.device.VirtualDeviceSpec
                remove = [spec(operation="remove", device=d) for d in old]
                wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=remove)))
            write_flat_disk(self.sim, disk.backing.fileName, bytes(self.data))
            if vm.runtime.powerState != "poweredOn":
                wait(vm.PowerOnVM_Task())
            self.disk_file = disk.backing.fileName
        finally:
            Disconnect(si)

    def seed(self, folder: Path) -> dict[str, dict[str, str]]:
        """The Plan, maps and Providers; the vCenter login, pinned by its thumbprint."""
        assert self.sim is not None
        for rel, text in FILES.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("{url}", self.sim.url) if "providers" in rel else text)
        fingerprint = sha1_fingerprint(self.sim.host, self.sim.port)
        return {
            f"{NAMESPACE}/vcenter-creds": {
                "user": self.sim.user,
                "password": self.sim.password,
                "thumbprint": fingerprint,
            }
        }

    def disks(self) -> dict[str, list[str]]:
        return {VM_NAME: [digest_of_bytes(bytes(self.data))]}

    def written_bytes(self, step: int) -> int:
        """Bytes the guest writes at ``step`` (what a round after it must copy, at least)."""
        return sum(length for _offset, length, _seed in WRITES[step])

    def guest_write(self, step: int) -> str:
        assert self.sim is not None
        parts = []
        for offset, length, seed in WRITES[step]:
            blob = semi_random(length, seed)
            guest_write(self.sim, self.disk_file, offset, blob)
            self.data[offset : offset + length] = blob
            parts.append(f"{_size(length)} at {_size(offset)}")
        return ", ".join(parts)

    def snapshots(self) -> int:
        """Read through the property collector (reading ``vm.snapshot`` straight makes the
        simulator panic when the VM has none)."""
        from pyVim.connect import Disconnect
        from pyVmomi import vim, vmodl

        si = self._connect()
        try:
            vm = _find(si, vim.VirtualMachine, VM_NAME)
            pc = si.RetrieveContent().propertyCollector
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=vm)],
                propSet=[
                    vmodl.query.PropertyCollector.PropertySpec(type=type(vm), pathSet=["snapshot"])
                ],
            )
            [found] = pc.RetrieveContents([spec])
            trees = [p.val for p in found.propSet if p.val is not None and p.val.rootSnapshotList]

            def count(nodes: list) -> int:
                return sum(1 + count(n.childSnapshotList or []) for n in nodes)

            return sum(count(t.rootSnapshotList) for t in trees)
        finally:
            Disconnect(si)

    def power_state(self) -> str:
        from pyVim.connect import Disconnect
        from pyVmomi import vim

        si = self._connect()
        try:
            state = str(_find(si, vim.VirtualMachine, VM_NAME).runtime.powerState)
        finally:
            Disconnect(si)
        return {"poweredOn": "On", "poweredOff": "Off"}.get(state, state)

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        if self._log_file is not None:
            self._log_file.close()
