"""An oVirt plan cold-migrated from the test engine and the real ovirt-imageio daemon to the
local target, end to end through git, beside the workspace's OVA plan."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.secrets.resolver import env_name
from reconciler.sources import sha1_fingerprint
from tests.support.ovirt_engine import World, make_world
from tests.support.ovirt_repo import ovirt_files, secrets_file
from tests.support.workspace import USER_ENV, small_vm

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


@pytest.fixture
def world(tmp_path: Path):
    w = make_world(tmp_path / "ovirt")
    yield w
    w.peer.stop()


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


VSPHERE = """apiVersion: forklift.konveyor.io/v1beta1
kind: Provider
metadata: {name: vcenter, namespace: openshift-mtv}
spec:
  type: vsphere
  url: URL
  secret: {name: vcenter-creds, namespace: openshift-mtv}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: NetworkMap
metadata: {name: vs-net, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: VM Network}
      destination: {type: pod}
    - source: {name: DC0_DVPG0}
      destination: {type: pod}
---
apiVersion: forklift.konveyor.io/v1beta1
kind: StorageMap
metadata: {name: vs-sto, namespace: openshift-mtv}
spec:
  provider:
    source: {name: vcenter, namespace: openshift-mtv}
    destination: {name: host, namespace: openshift-mtv}
  map:
    - source: {name: LocalDS_0}
      destination: {storageClass: standard}
---
apiVersion: forklift.konveyor.io/v1beta1
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
    - name: DC0_H0_VM0
---
apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata: {name: vs-plan-1, namespace: openshift-mtv}
spec:
  plan: {name: vs-plan, namespace: openshift-mtv}
"""


@pytest.fixture
def vcsim():
    from tests.support.vsphere import start_simulator

    sim = start_simulator(hosts=1, vms=1, datastores=1)
    yield sim
    sim.stop()


def _vsphere_disks(sim) -> list[bytes]:
    """The simulator VM's disks given known content (as tests/integration/test_vsphere.py)."""
    from pyVmomi import vim

    from tests.support.vsphere import connect, content, write_flat_disk
    from tests.support.vsphere_repo import vms_by_name

    conn = connect(sim)
    try:
        vm = vms_by_name(conn.si)["DC0_H0_VM0"]
        out = []
        for i, d in enumerate(vm.config.hardware.device):
            if isinstance(d, vim.vm.device.VirtualDisk):
                blob = content(d.capacityInKB * 1024, seed=40 + i)
                write_flat_disk(sim, d.backing.fileName, blob)
                out.append(blob)
        return out
    finally:
        conn.close()


def test_an_ovirt_plan_cold_migrates_to_the_target_beside_a_vsphere_plan(
    workspace_factory, world: World, vcsim, tmp_path
):
    """One repo, one pass: the workspace's OVA plan, an oVirt plan and a vSphere plan."""
    e = world.engine
    ws = workspace_factory([small_vm("steady", 1)])
    vs_disks = _vsphere_disks(vcsim)
    fp = sha1_fingerprint(vcsim.host, vcsim.port)
    env = secrets_file(
        tmp_path / "secrets.yaml",
        e.secret(),
        **{"openshift-mtv__vcenter-creds": vcsim.secret(thumbprint=fp)},
    )
    files = ovirt_files(
        e.url,
        ["{name: ovirtmgmt}", f"{{id: {e.network('vlan10').id}}}"],
        ["{name: data1}", f"{{id: {e.storage_domain('data2').id}}}"],
        ["{name: web}", f"{{id: {world.db}}}"],
        host=False,
    )
    files["providers/vcenter.yaml"] = VSPHERE.replace("URL", vcsim.url)
    ws.user_commit(files, "an oVirt plan and a vSphere plan")
    listed = ws.cli("inventory", str(ws.clone), "-p", "rhv", env=env, check=True)
    assert "web" in listed.stdout and "vlan10/vlan10-qos" in listed.stdout

    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "engine-secret" not in proc.stdout + proc.stderr
    plan = ws.status("plan", "rhv-plan")["status"]
    vms = {v["name"]: v for v in plan["migration"]["vms"]}
    assert {n: v["phase"] for n, v in vms.items()} == {"web": "Completed", "db": "Completed"}
    steps = {s["name"]: s for s in vms["web"]["pipeline"]}
    assert [t["verified"] for t in steps["CopyDisks"]["tasks"]] == [True, True]
    convert = steps["ConvertGuest"]  # the guest runs on KVM already: not "skipped"
    assert (convert["phase"], convert["message"][:11]) == ("Completed", "not needed:")
    ids = {c.get("id") for v in plan["validation"]["vms"] for c in v["concerns"]}
    assert "ovirt.placement_policy.affinity_set" in ids  # the default oVirt rules ran

    # the source: shut down for the copy, no transfer left open, no disk locked
    assert e.vms[world.web].vm.status.value == "down"
    assert e.open_transfers() == []
    assert {d.disk.status.value for d in e.disks.values()} == {"ok"}
    assert {x.phase.value for x in e.transfers.values()} == {"finished_success"}

    ns = ws.cluster / "rhv-vms"
    load = YAML(typ="safe").load
    web = load((ns / "virtualmachines" / "web.yaml").read_text())
    db = load((ns / "virtualmachines" / "db.yaml").read_text())
    assert web["spec"]["runStrategy"] == "Always"  # the source was up
    assert db["spec"]["runStrategy"] == "Halted"  # the source was down
    domain = web["spec"]["template"]["spec"]["domain"]
    assert [i["macAddress"] for i in domain["devices"]["interfaces"]] == [
        "56:6f:1a:00:00:01",
        "56:6f:1a:00:00:02",
    ]
    assert "efi" in domain["firmware"]["bootloader"]
    assert domain["cpu"] == {"sockets": 1, "cores": 2, "threads": 1}
    assert domain["memory"] == {"guest": "2048Mi"}
    assert db["spec"]["template"]["spec"]["domain"]["firmware"]["bootloader"] == {"bios": {}}

    # byte-identical to the images behind the daemon, holes kept as holes
    for target, vm_id in (("web", world.web), ("db", world.db)):
        for i, a in enumerate(e.vms[vm_id].attachments):
            out = ns / "disks" / f"{target}-disk-{i}.img"
            expected = world.reference[a.disk.id]
            assert out.read_bytes() == expected, (target, i)
            data = len(expected) - expected.count(0)  # a bound on the bytes that are not zero
            assert _allocated(out) <= max(4 * MiB, 2 * data + MiB), (target, i)
    boot = ns / "disks" / "web-disk-0.img"
    assert _allocated(boot) < os.path.getsize(boot) // 4  # 24 MiB with 2 MiB of data

    # the vSphere plan beside it ran in the same pass
    vs = {v["name"]: v["phase"] for v in ws.status("plan", "vs-plan")["status"]["migration"]["vms"]}
    assert vs == {"DC0_H0_VM0": "Completed"}
    for i, blob in enumerate(vs_disks):
        assert (ws.cluster / "vs-vms" / "disks" / f"dc0-h0-vm0-disk-{i}.img").read_bytes() == blob

    # the outside check: ovirt-img download-disk (Forklift's populator) reads the same bytes
    first = e.vms[world.web].attachments[0].disk.id
    world.peer.ovirt_img_download(first, tmp_path / "ovirt-img.raw")
    assert (tmp_path / "ovirt-img.raw").read_bytes() == boot.read_bytes()


def _onto_cluster(ws, cluster) -> str:
    """The workspace's providers file with the destination Provider pointing at the cluster
    (its token is the Secret ``cluster-token``)."""
    yaml = YAML(typ="rt")
    docs = list(yaml.load_all((ws.clone / "providers" / "providers.yaml").read_text()))
    docs[1]["spec"]["url"] = cluster.url
    docs[1]["spec"]["secret"] = {"name": "cluster-token", "namespace": "openshift-mtv"}
    docs[1]["spec"]["settings"] = {"jobPollSeconds": "0.1"}
    out = io.StringIO()
    yaml.dump_all(docs, out)
    return out.getvalue()


def _warm_app(world: World, images: Path) -> str:
    """A running VM ``app`` with two qcow2 disks that allow incremental backup."""
    from tests.support.ovirt_engine import pattern, qcow2_with_holes

    images.mkdir()
    return world.engine.add_vm(
        "app",
        [
            (
                qcow2_with_holes(images / "app-1.qcow2", 8 * MiB, [(0, pattern(MiB, 7))]),
                "qcow2",
                "data1",
                "virtio",
            ),
            (
                qcow2_with_holes(images / "app-2.qcow2", 6 * MiB, [(MiB, pattern(MiB, 8))]),
                "qcow2",
                "data2",
                "virtio",
            ),
        ],
        [("nic1", "56:6f:1a:00:00:09", "ovirtmgmt")],
        status="up",
        incremental=True,
    )


def _warm_files(e, interval: float) -> dict[str, str]:
    from tests.support.vsphere_repo import warm_config

    files = ovirt_files(
        e.url, ["{name: ovirtmgmt}"], ["{name: data1}", "{name: data2}"], ["{name: app}"],
        host=False, config=warm_config(interval),
    )  # fmt: skip
    files["plans/rhv-plan.yaml"] = files["plans/rhv-plan.yaml"].replace(
        "  targetNamespace: rhv-vms\n", "  targetNamespace: rhv-vms\n  warm: true\n"
    )
    return files


def _engine_left_clean(e, app: str) -> None:
    """After a warm migration: every backup ended, no checkpoint or dirty bitmap of ours, no
    transfer open and no disk locked."""
    assert {b.phase.value for b in e.vms[app].backups} == {"succeeded"}
    assert e.vms[app].checkpoints == []
    assert all(e.checkpoint_bitmaps(a.disk.id) == [] for a in e.vms[app].attachments)
    assert e.open_transfers() == []
    assert {d.disk.status.value for d in e.disks.values()} == {"ok"}


def _final_images(e, app: str, folder: Path) -> list[bytes]:
    """The guest-visible bytes of the VM's disks now, as qemu-img reads its images."""
    from tests.support.ovirt_engine import logical

    out = []
    for i, a in enumerate(e.vms[app].attachments):
        d = e.disks[a.disk.id]
        out.append(logical(d.image, d.fmt, folder / f"final-{i}.raw"))
    return out


def _merge_cutover(ws) -> None:
    """The reviewer merges the cutover branch the reconciler proposed."""
    import git

    branch = "mtv-gitops/cutover/openshift-mtv/rhv-plan-1"
    repo = git.Repo(ws.clone)
    with repo.git.custom_environment(**USER_ENV):
        repo.git.pull("--rebase", "origin", "main")
        repo.git.fetch("origin", branch)
        repo.git.merge("--no-ff", "-m", "Merge the cutover", f"origin/{branch}")
        repo.git.push("origin", "HEAD:main")


def test_on_a_kubevirt_target_each_disk_is_copied_by_a_transfer_job(
    workspace_factory, world: World, cluster, kubelet, tmp_path
) -> None:
    """The Jobs read the engine's credentials from a Secret by reference (``secretKeyRef``,
    resolved by the kubelet into the pod's environment),
    connect through the plugin, and download through image transfers like the local copy."""
    from tests.support.cluster import TOKEN

    e = world.engine
    ws = workspace_factory([small_vm("steady", 1)])
    files = ovirt_files(
        e.url,
        ["{name: ovirtmgmt}", "{name: vlan10}"],
        ["{name: data1}", "{name: data2}"],
        ["{name: web}"],
        host=False,
    )
    files["providers/providers.yaml"] = _onto_cluster(ws, cluster)
    ws.user_commit(files, "an oVirt plan onto the cluster")
    env = secrets_file(
        tmp_path / "secrets.yaml", e.secret(), **{"openshift-mtv__cluster-token": {"token": TOKEN}}
    )
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = ws.status("plan", "rhv-plan")["status"]
    [vm] = plan["migration"]["vms"]
    assert vm["phase"] == "Completed", vm
    runs = [r for r in kubelet.runs if r.job.startswith("web-")]
    secret_envs = [
        env_name("openshift-mtv", "rhv-secret", k) for k in ("user", "password", "cacert")
    ]
    assert len(runs) == 2 and all(r.returncode == 0 for r in runs), runs
    assert all(r.env.get(k) for r in runs for k in secret_envs), runs[0].env.keys()
    assert all("engine-secret" not in " ".join(r.argv) for r in runs)  # never on the command
    for i, a in enumerate(e.vms[world.web].attachments):
        pvc = kubelet.storage("rhv-vms", f"web-disk-{i}")
        img = pvc / "disk.img" if pvc.is_dir() else pvc.with_suffix(".raw")
        assert img.read_bytes() == world.reference[a.disk.id]
    assert e.open_transfers() == []


def test_a_warm_ovirt_plan_copies_two_rounds_and_cuts_over_by_merge_leaving_no_checkpoint(
    workspace_factory, world: World, tmp_path
):
    """Incremental backups: the initial copy from a full backup, two precopy rounds of the
    dirty extents the daemon reports, the cutover once the branch is merged; the target's
    disks equal the source's images, and no backup or checkpoint (dirty bitmap) is left."""
    from tests.support.vsphere_repo import make_round_due

    e = world.engine
    app = _warm_app(world, tmp_path / "app")
    first, second = (a.disk.id for a in e.vms[app].attachments)
    ws = workspace_factory([small_vm("steady", 1)])
    env = secrets_file(tmp_path / "secrets.yaml", e.secret())
    ws.user_commit(_warm_files(e, 3600), "a warm oVirt plan")

    def vm_status() -> dict:
        [vm] = ws.status("plan", "rhv-plan")["status"]["migration"]["vms"]
        return vm

    def run() -> dict:
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return vm_status()

    # pass 1: a full backup (its checkpoint is the change id), round 0 copies every disk
    vm = run()
    assert vm["phase"] == "CopyingPaused", vm
    [round0] = vm["warm"]["precopies"]
    assert round0["round"] == 0 and round0["full"]
    assert len(e.vms[app].checkpoints) == 1
    assert e.vms[app].backups[0].from_checkpoint_id is None

    # two precopy rounds, each after the guest wrote: only the dirty extents are copied
    for n, writes in (
        (1, [(1 * MiB, b"\x11" * 4096), (5 * MiB + 512, b"\x22" * 65536)]),
        (2, [(7 * MiB, b"\x33" * 8192)]),
    ):
        for offset, blob in writes:
            e.guest_write(first, offset, blob)
        make_round_due(ws, "openshift-mtv/rhv-plan")
        vm = run()
        assert vm["phase"] == "CopyingPaused", vm
        done = vm["warm"]["precopies"][n]
        assert done["round"] == n and done["extents"] == len(writes), done
        assert sum(len(b) for _, b in writes) <= done["bytes"] <= 2 * MiB, done
        backup = e.vms[app].backups[n]
        assert backup.from_checkpoint_id == e.vms[app].backups[n - 1].to_checkpoint_id
        assert len(e.vms[app].checkpoints) <= 2  # older ones of ours removed from the root

    # more writes, the reviewer merges the cutover branch: the final delta, then the VM
    e.guest_write(second, 4 * MiB, b"\x44" * 4096)
    _merge_cutover(ws)
    vm = run()
    assert vm["phase"] == "Completed", vm
    warm = vm["warm"]
    assert warm["precopies"][-1].get("final") is True and len(warm["precopies"]) == 4
    assert 4096 <= warm["cutover"]["bytes"] <= MiB

    assert e.vms[app].vm.status.value == "down"
    _engine_left_clean(e, app)
    ns = ws.cluster / "rhv-vms"
    for i, expected in enumerate(_final_images(e, app, tmp_path)):
        assert (ns / "disks" / f"app-disk-{i}.img").read_bytes() == expected, i
    manifest = YAML(typ="safe").load((ns / "virtualmachines" / "app.yaml").read_text())
    assert manifest["spec"]["runStrategy"] == "Always"  # the source ran


def test_a_warm_ovirt_plan_onto_a_cluster_copies_rounds_in_jobs_and_cuts_over_by_merge(
    workspace_factory, world: World, cluster, kubelet, tmp_path
) -> None:
    """The same warm migration onto the KubeVirt target: each round's transfer Jobs read the
    backup the reconciler started (the Job only opens its image transfer), and the PVCs end
    byte-identical with no backup, checkpoint or transfer left on the engine."""
    from tests.support.cluster import TOKEN
    from tests.support.vsphere_repo import make_round_due

    e = world.engine
    app = _warm_app(world, tmp_path / "app")
    first, second = (a.disk.id for a in e.vms[app].attachments)
    ws = workspace_factory([small_vm("steady", 1)])
    files = _warm_files(e, 3600)
    files["providers/providers.yaml"] = _onto_cluster(ws, cluster)
    ws.user_commit(files, "a warm oVirt plan onto the cluster")
    env = secrets_file(
        tmp_path / "secrets.yaml", e.secret(), **{"openshift-mtv__cluster-token": {"token": TOKEN}}
    )

    def run() -> dict:
        proc = ws.reconcile("--once", env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [vm] = ws.status("plan", "rhv-plan")["status"]["migration"]["vms"]
        return vm

    def jobs() -> list:
        return [r for r in kubelet.runs if r.job.startswith("app-")]

    vm = run()
    assert vm["phase"] == "CopyingPaused", vm
    assert len(jobs()) == 2 and {r.returncode for r in jobs()} == {0}, jobs()
    assert len(e.vms[app].checkpoints) == 1

    e.guest_write(first, 1 * MiB, b"\x11" * 4096)
    make_round_due(ws, "openshift-mtv/rhv-plan")
    vm = run()
    assert vm["phase"] == "CopyingPaused", vm
    round1 = vm["warm"]["precopies"][1]
    assert round1["round"] == 1 and round1["extents"] == 1, round1
    assert len(jobs()) == 4 and {r.returncode for r in jobs()} == {0}, jobs()
    assert e.vms[app].backups[1].from_checkpoint_id == e.vms[app].backups[0].to_checkpoint_id

    e.guest_write(second, 4 * MiB, b"\x44" * 4096)
    _merge_cutover(ws)
    vm = run()
    assert vm["phase"] == "Completed", vm
    assert 4096 <= vm["warm"]["cutover"]["bytes"] <= MiB
    assert {r.returncode for r in jobs()} == {0}

    assert e.vms[app].vm.status.value == "down"
    _engine_left_clean(e, app)
    for i, expected in enumerate(_final_images(e, app, tmp_path)):
        pvc = kubelet.storage("rhv-vms", f"app-disk-{i}")
        img = pvc / "disk.img" if pvc.is_dir() else pvc.with_suffix(".raw")
        assert img.read_bytes()[: len(expected)] == expected, i


def test_a_reconciler_killed_mid_round_leaves_nothing_that_blocks_the_next_backup(
    workspace_factory, world: World, tmp_path
) -> None:
    """kill -9 while a precopy round copies (its backup ready, its image transfers open): a
    real engine allows one active backup per VM and keeps a disk under transfer locked until
    the transfer's inactivity timeout (600 s, as the plugin asks) cancels it. The plan waits
    for that, then the round is copied again from its backup, the cutover merges, and the
    engine is left with no backup, checkpoint or transfer."""
    import signal
    import subprocess
    import time

    from tests.support.vsphere_repo import make_round_due
    from tests.support.workspace import CLI

    e = world.engine
    app = _warm_app(world, tmp_path / "app")
    first, second = (a.disk.id for a in e.vms[app].attachments)
    ws = workspace_factory([small_vm("steady", 1)])
    files = _warm_files(e, 3600)
    # 1 MiB/s: round 1's 6 MiB take seconds, so the kill lands in it however slow the machine
    files[".mtv-gitops.yaml"] = files[".mtv-gitops.yaml"].replace(
        "transfer: {chunkMiB: 1}", "transfer: {chunkMiB: 1, maxMiBps: 1}"
    )
    ws.user_commit(files, "a warm oVirt plan, copies capped")
    env = secrets_file(tmp_path / "secrets.yaml", e.secret())
    argv = [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state)]
    argv += ["--cluster", str(ws.cluster), "--once"]

    def run() -> dict:
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [vm] = ws.status("plan", "rhv-plan")["status"]["migration"]["vms"]
        return vm

    assert run()["phase"] == "CopyingPaused"
    for n in range(6):
        e.guest_write(first, (n + 1) * MiB, bytes([0x50 + n]) * MiB)
    make_round_due(ws, "openshift-mtv/rhv-plan")
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **env}
    )
    try:
        deadline = time.monotonic() + 300  # a safety net, not a measure of speed
        while not (len(e.vms[app].backups) == 2 and e.open_transfers()):
            assert proc.poll() is None, "the pass ended before its round was seen copying"
            assert time.monotonic() < deadline, "round 1 never started copying"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert e.open_transfers(), "killed with its image transfers open"
    assert e.vms[app].backups[1].phase.value == "ready"

    # the engine keeps a disk locked while its transfer's client may come back: the plan
    # waits (not ready, saying why) instead of failing the VM ...
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ovirt.disk.illegal_or_locked_status" in proc.stdout, proc.stdout
    [vm] = ws.status("plan", "rhv-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Precopy", vm  # the round the killed pass was in
    # ... until the transfers' inactivity timeout ends them and unlocks the disks
    assert e.cancel_idle_transfers(skew=601.0) and e.open_transfers() == []
    vm = run()
    assert vm["phase"] == "CopyingPaused", vm
    assert [p["round"] for p in vm["warm"]["precopies"]] == [0, 1], vm["warm"]
    e.guest_write(second, 4 * MiB, b"\x44" * 4096)
    _merge_cutover(ws)
    assert run()["phase"] == "Completed"

    _engine_left_clean(e, app)
    ns = ws.cluster / "rhv-vms"
    for i, expected in enumerate(_final_images(e, app, tmp_path)):
        assert (ns / "disks" / f"app-disk-{i}.img").read_bytes() == expected, i


def test_a_warm_ovirt_plan_of_disks_without_incremental_backup_is_not_ready(
    workspace_factory, world: World, tmp_path
):
    """``web``'s disks have incremental backup off (a raw disk cannot have it): the plan is
    Not Ready naming them, and no backup is started."""
    e = world.engine
    ws = workspace_factory([small_vm("steady", 1)])
    env = secrets_file(tmp_path / "secrets.yaml", e.secret())
    files = ovirt_files(
        e.url, ["{name: ovirtmgmt}", "{name: vlan10}"], ["{name: data1}", "{name: data2}"],
        ["{name: web}"], host=False,
    )  # fmt: skip
    files["plans/rhv-plan.yaml"] = files["plans/rhv-plan.yaml"].replace(
        "  targetNamespace: rhv-vms\n", "  targetNamespace: rhv-vms\n  warm: true\n"
    )
    ws.user_commit(files, "a warm oVirt plan of disks without incremental backup")
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a plan not ready
    status = ws.status("plan", "rhv-plan")["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    off = conditions.get("VMChangeTrackingDisabled")
    assert off is not None, (status["conditions"], proc.stdout + proc.stderr)
    assert off["category"] == "Critical"
    for a in e.vms[world.web].attachments:
        assert a.disk.id in off["message"]
    assert "Ready" not in conditions
    assert e.vms[world.web].backups == [] and e.vms[world.web].vm.status.value == "up"
