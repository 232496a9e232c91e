"""A warm migration from the vCenter simulator, cut over by merging the proposed branch.

The simulator (``plugins.vsphere.simulator``, built once from Debian's Go packages) runs one
powered-on VM with changed block tracking and a disk of known, scattered content.  The demo
seeds ``DIR/remote.git`` and ``DIR/repo`` with a vSphere Provider, maps and a ``warm: true``
Plan (the Provider's login is in ``DIR/secrets.yaml``, never in git), then runs reconciler
passes in this process: the initial copy (the cutover is proposed as a branch), two precopy
rounds of what the guest wrote in between, a reviewer's ``git merge --no-ff`` of the branch,
and the cutover.  It prints the rounds, the downtime and the bytes copied during it, and checks
the target image against the source's final content byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
from rich.markup import escape
from rich.table import Table

from plugins.ova.factory import semi_random
from plugins.vsphere.simulator import (
    Simulator,
    SimulatorUnavailable,
    simulator_binary,
    start_simulator,
)
from plugins.vsphere.simulator.disks import add_disk, guest_write, wait, write_flat_disk
from reconciler.cli.demo import _scattered, prepare, push_seed
from reconciler.cli.render import RichReporter, console, err_console
from reconciler.daemon.reconcile import PassResult, Reconciler, Settings
from reconciler.daemon.state_dir import state_dir_for
from reconciler.gitops._git import identity_env
from reconciler.progress.store import VmProgress
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import sha1_fingerprint

KIB, MIB = 1024, 1024**2
NAMESPACE, PLAN, MIGRATION = "openshift-mtv", "warm-plan", "warm-plan-1"
TARGET_NS = "demo-warm"
VM_NAME = "orders-db"  # the simulator's DC0_H0_VM0, renamed
DISK_SIZE = 128 * MIB
INTERVAL = 3  # seconds between precopy rounds
BRANCH = f"mtv-gitops/cutover/{NAMESPACE}/{MIGRATION}"
__all__ = ["run_warm_demo"]

# what the guest writes: before round 1, before round 2, and after the last round (the
# final delta copied while the VM is down); (offset, length, seed)
WRITES = {
    1: [(3 * MIB, 4 * KIB, 11), (40 * MIB + 512, 64 * KIB, 12), (100 * MIB, MIB, 13)],
    2: [(3 * MIB + 8 * KIB, 16 * KIB, 21), (77 * MIB, 256 * KIB, 22)],
    "final": [(12 * MIB, 8 * KIB, 31), (120 * MIB + 4 * KIB, 4 * KIB, 32)],
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


@dataclass
class Source:
    """The simulator's VM as the demo shaped it, and what its disk holds now."""

    vm: Any  # vim.VirtualMachine (of a connection closed once prepared; its id stays)
    disk_file: str  # "[LocalDS_0] DC0_H0_VM0/....vmdk"
    data: bytearray  # the disk's content, kept in step with every guest write


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _connect(sim: Simulator) -> Any:
    from pyVim.connect import SmartConnect

    return SmartConnect(
        host=sim.host,
        port=sim.port,
        user=sim.user,
        pwd=sim.password,
        disableSslCertValidation=True,
    )


def _find(si: Any, kind: Any, name: str) -> Any:
    c = si.RetrieveContent()
    view = c.viewManager.CreateContainerView(c.rootFolder, [kind], True)
    try:
        return next(o for o in view.view if o.name == name)
    finally:
        view.Destroy()


def _prepare_source(sim: Simulator) -> Source:
    """DC0_H0_VM0 renamed, CBT on, its one disk a 128 MiB disk of scattered data, running."""
    from pyVim.connect import Disconnect
    from pyVmomi import vim

    si = _connect(sim)
    try:
        vm = _find(si, vim.VirtualMachine, "DC0_H0_VM0")
        wait(vm.Rename_Task(VM_NAME))
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
        old = [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        disk = add_disk(si, vm, DISK_SIZE, _find(si, vim.Datastore, "LocalDS_0"))
        if old:  # the simulator's 1 MiB disk goes: one disk, the one the guest writes to
            remove = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in old]
            wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=remove)))
        data = bytearray(DISK_SIZE)
        for offset, blob in _scattered(DISK_SIZE, 16 * MIB, 8, 7):
            data[offset : offset + len(blob)] = blob
        write_flat_disk(sim, disk.backing.fileName, bytes(data))
        if vm.runtime.powerState != "poweredOn":
            wait(vm.PowerOnVM_Task())
        return Source(vm, disk.backing.fileName, data)
    finally:
        Disconnect(si)


def _guest_writes(sim: Simulator, src: Source, key: int | str) -> str:
    parts = []
    for offset, length, seed in WRITES[key]:
        blob = semi_random(length, seed)
        guest_write(sim, src.disk_file, offset, blob)
        src.data[offset : offset + length] = blob
        parts.append(f"{_size(length)} at {_size(offset)}")
    return ", ".join(parts)


def _seed(workspace: Path, sim: Simulator) -> tuple[Path, Path]:
    """The repo (Plan, maps, Providers) pushed to DIR/remote.git and cloned to DIR/repo; the
    Provider's login in DIR/secrets.yaml.  Returns (remote, secrets file)."""
    seed = workspace / "seed"
    for rel, text in FILES.items():
        path = seed / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{url}", sim.url) if rel.startswith("providers/") else text)
    remote = push_seed(workspace, seed, "Plan: a warm migration of orders-db from vCenter")
    secrets = workspace / "secrets.yaml"
    secrets.touch(mode=0o600)
    fingerprint = sha1_fingerprint(sim.host, sim.port)
    secrets.write_text(
        f"{NAMESPACE}/vcenter-creds:\n  user: {sim.user}\n  password: {sim.password}\n"
        f'  thumbprint: "{fingerprint}"\n'
    )
    return remote, secrets


class _Demo:
    def __init__(self, workspace: Path, sim: Simulator, secrets: Path, verify: bool) -> None:
        self.workspace = workspace
        self.sim = sim
        self.settings = Settings(
            source=str(workspace / "repo"),
            state_dir=state_dir_for(str(workspace / "repo")),
            cluster=workspace / "cluster",
            secrets=SecretResolver(path=secrets, environ={}),
            verify=verify,
        )
        self.rec = Reconciler(self.settings)
        self.last: PassResult | None = None

    def vm(self) -> VmProgress | None:
        return next(iter(self.rec.store.vms(f"{NAMESPACE}/{PLAN}")), None)

    def warm(self) -> dict[str, Any]:
        v = self.vm()
        return dict(v.warm or {}) if v is not None else {}

    def run_pass(self, title: str) -> VmProgress | None:
        console.print(f"\n[bold]pass: {title}[/]")
        self.settings.reporter = RichReporter()  # fresh bars: each round has its own size
        with self.settings.reporter:
            self.last = self.rec.run_pass()
        for problem in self.last.problems:
            err_console.print(f"[yellow]{escape(problem)}[/]")
        v = self.vm()
        console.print(f"  -> {VM_NAME}: {v.phase if v else 'not started'}")
        return v

    def sleep_until_next_round(self) -> None:
        """Until the paused VM's next round is due (what the daemon's wake-up does)."""
        from reconciler.pipeline.warm import epoch_of

        wake = self.last.wake_at if self.last is not None else None
        if wake is None and self.warm().get("nextPrecopyAt"):
            wake = epoch_of(self.warm()["nextPrecopyAt"])
        delay = max(0.0, (wake or time.time() + INTERVAL) - time.time()) + 0.3
        console.print(f"  waiting {delay:.1f}s for the next precopy round (every {INTERVAL}s)")
        time.sleep(delay)

    def close(self) -> None:
        self.rec.close()


def _merge_as_reviewer(workspace: Path) -> str:
    """In DIR/repo: fetch the proposal, merge it with --no-ff, push main; returns its diff."""
    repo = git.Repo(workspace / "repo")
    with repo.git.custom_environment(**identity_env("Demo Reviewer", "reviewer@example.com")):
        repo.git.pull("--rebase", "origin", "main")
        repo.git.fetch("origin", BRANCH)
        diff = repo.git.diff(f"HEAD...origin/{BRANCH}", "--unified=0")
        repo.git.merge("--no-ff", "-m", f"Merge {BRANCH}: cut over", f"origin/{BRANCH}")
        repo.git.push("origin", "HEAD:main")
    return diff


def _precopy_rounds(warm: dict[str, Any]) -> list[dict[str, Any]]:
    """The rounds of changed extents between the full copy and the cutover."""
    return [r for r in warm.get("precopies", []) if r.get("round", 0) >= 1 and not r.get("final")]


def _rounds_table(warm: dict[str, Any]) -> Table:
    table = Table(title="Copy rounds", title_justify="left")
    for col in ("Round", "Start", "End", "Extents", "Chunks", "Bytes"):
        table.add_column(col, justify="right" if col != "Round" else "left")
    for r in warm.get("precopies", []):
        label = str(r["round"])
        if r.get("final"):
            label += " final delta (VM off)"
        elif r.get("round") == 0:
            label += " full copy"
        table.add_row(
            label,
            str(r.get("start", ""))[11:19],
            str(r.get("end", ""))[11:19],
            str(r.get("extents", "")),
            str(r.get("chunks", "")),
            _size(r.get("bytes", 0)),
        )
    return table


def _snapshot_count(sim: Simulator) -> int:
    """Snapshots on the source VM, read through the property collector (reading
    ``vm.snapshot`` straight makes the simulator panic when the VM has none)."""
    from pyVim.connect import Disconnect
    from pyVmomi import vim, vmodl

    si = _connect(sim)
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


def _power_state(sim: Simulator) -> str:
    from pyVim.connect import Disconnect
    from pyVmomi import vim

    si = _connect(sim)
    try:
        return str(_find(si, vim.VirtualMachine, VM_NAME).runtime.powerState)
    finally:
        Disconnect(si)


def run_warm_demo(workspace: Path, verify: bool = True) -> int:
    """The whole warm demo; returns the exit code."""
    started = time.monotonic()
    workspace = workspace.resolve()
    try:
        simulator_binary(log=lambda line: console.print(escape(line)))
    except SimulatorUnavailable as exc:
        err_console.print(f"[red]demo --warm cannot run:[/] {escape(str(exc))}")
        return 1
    prepare(workspace)
    console.rule("mtv-gitops demo --warm")
    console.print(f"workspace: {workspace}")
    os.environ.pop("MTV_GITOPS_SECRETS", None)
    sim_log = (workspace / "simulator.log").open("w")
    sim = start_simulator(hosts=1, vms=1, datastores=1, stderr=sim_log)
    demo: _Demo | None = None
    try:
        src = _prepare_source(sim)
        console.print(
            f"vCenter simulator at {sim.url}: VM {VM_NAME} running, changed block tracking on, "
            f"one {_size(DISK_SIZE)} disk holding 16 MiB of data ({src.disk_file})"
        )
        remote, secrets = _seed(workspace, sim)
        console.print(
            f"git remote {remote}, clone {workspace / 'repo'}; the Plan says warm: true; "
            f"the vCenter login is in {secrets} (not in git); simulator log: {sim_log.name}"
        )
        demo = _Demo(workspace, sim, secrets, verify)
        ok = _run(demo, sim, src)
    except Exception as exc:  # noqa: BLE001 - the demo says what broke, in red, and exits 1
        err_console.print(f"[red]demo --warm failed:[/] {type(exc).__name__}: {escape(str(exc))}")
        ok = False
    finally:
        if demo is not None:
            demo.close()
        sim.stop()
        sim_log.close()
    exe = shutil.which("mtv-gitops") or str(Path(sys.executable).parent / "mtv-gitops")
    console.print(f"\nlook around:\n  {exe} status {workspace / 'repo'}")
    console.print(f"whole demo {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def _run(demo: _Demo, sim: Simulator, src: Source) -> bool:
    ws = demo.workspace
    v = demo.run_pass("initial snapshot and full copy while the VM runs")
    warm = demo.warm()
    if v is None or v.phase != "CopyingPaused" or not warm.get("cutoverBranch"):
        err_console.print(f"[red]expected the VM to wait between rounds, got {v}[/]")
        return False
    console.print(f"  cutover proposed on branch [bold]{escape(warm['cutoverBranch'])}[/]")
    if warm.get("cutoverInstruction"):
        console.print(f"  status says: {escape(warm['cutoverInstruction'])}")

    for k in (1, 2):
        console.print(f"\nthe guest writes: {_guest_writes(sim, src, k)}")
        demo.sleep_until_next_round()
        v = demo.run_pass(f"precopy round {k}: only what changed since the last snapshot")
        if v is None or len(_precopy_rounds(demo.warm())) < k:
            err_console.print(f"[red]precopy round {k} did not run: {v}[/]")
            return False
    console.print(_rounds_table(demo.warm()))

    console.print(f"\n[bold]a reviewer merges {escape(BRANCH)}[/] (in {ws / 'repo'}):")
    diff = _merge_as_reviewer(ws)
    for line in diff.splitlines():
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            console.print(f"  {escape(line)}")
    console.print(f"\nthe guest writes after the last round: {_guest_writes(sim, src, 'final')}")

    for _ in range(6):
        v = demo.run_pass("cutover: power off, final snapshot, final delta, VirtualMachine")
        if v is None or v.finished:
            break
        if demo.last is not None and demo.last.wake_at:
            demo.sleep_until_next_round()
    return _report(demo, sim, src, v)


def _report(demo: _Demo, sim: Simulator, src: Source, v: VmProgress | None) -> bool:
    ws = demo.workspace
    warm = demo.warm()
    console.print()
    console.print(_rounds_table(warm))
    ok = v is not None and v.result == "Succeeded"
    if v is None or not ok:
        error = (v.error or {}) if v is not None else {}
        err_console.print(
            f"[red]{VM_NAME} did not complete: {v.phase if v else 'not run'} "
            f"{escape(str(error.get('message', '')))}[/]"
        )
    final = [r for r in warm.get("precopies", []) if r.get("final")]
    ok &= len(_precopy_rounds(warm)) >= 2 and len(final) == 1
    downtime, cut = warm.get("downtimeSeconds"), warm.get("cutoverBytes")
    if downtime is None or cut is None:
        err_console.print("[red]no downtime or cutover bytes recorded[/]")
        ok = False
    else:
        console.print(
            f"[bold]downtime {downtime} s[/] (source powered off at {warm.get('powerOffAt')} until "
            "the VirtualMachine was created)"
        )
        console.print(
            f"[bold]cutover bytes: {_size(cut)}[/] ({cut:,} bytes) copied during the {downtime} s "
            f"downtime, of a {_size(DISK_SIZE)} disk ({100 * cut / DISK_SIZE:.2f}%)"
        )

    images = sorted((ws / "cluster" / TARGET_NS / "disks").glob("*.img"))
    want = hashlib.sha256(src.data).hexdigest()
    same = len(images) == 1 and images[0].read_bytes() == bytes(src.data)
    ok &= same
    if same:
        console.print(
            f"target image {images[0]} is byte-identical to the source disk's final content "
            f"(sha256 {want[:16]}…, all guest writes included)"
        )
    else:
        err_console.print(
            f"[red]target image(s) {[str(i) for i in images]} differ from the source disk's "
            "final content[/]"
        )
    left = _snapshot_count(sim)
    ok &= left == 0
    colour = "green" if left == 0 else "red"
    console.print(f"[{colour}]{left} snapshots left on the source VM[/]")
    power = _power_state(sim)
    ok &= power == "poweredOff"
    console.print(f"source VM {VM_NAME}: {power}")
    manifest = ws / "cluster" / TARGET_NS / "virtualmachines" / f"{v.target_name if v else ''}.yaml"
    if manifest.exists():
        running = "runStrategy: Always" in manifest.read_text()
        ok &= running
        console.print(f"VirtualMachine {manifest} ({'running' if running else 'NOT running'})")
    else:
        err_console.print(f"[red]no VirtualMachine manifest at {manifest}[/]")
        ok = False

    clone = git.Repo(ws / "repo")
    clone.remotes.origin.pull()
    statuses = clone.git.rev_list("--count", "--grep=^status: ", "HEAD")
    console.print("\n$ git log --oneline --invert-grep --grep='^status: '   (in DIR/repo)")
    console.print(escape(clone.git.log("--oneline", "--invert-grep", "--grep=^status: ")))
    console.print(f"(and {statuses} status commits by mtv-gitops: git log --oneline -- status/)")
    if ok:
        console.print("[green]warm migration verified[/]")
    else:
        err_console.print("[red]demo --warm failed:[/] see above and `mtv-gitops status`")
    return ok
