"""Lay out a demo workspace, migrate three VMs from OVA files, and show what happened.

``DIR/ova`` generated .ova files (real streamOptimized VMDKs of known content),
``DIR/remote.git`` a bare remote seeded from examples/repo, ``DIR/repo`` a user's clone,
``DIR/cluster`` the local target; the reconciler's private state is in
``DIR/repo/.git/mtv-gitops``, where later commands on ``DIR/repo`` find it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import git
from rich.table import Table
from ruamel.yaml import YAML

from plugins.ova.factory import DiskSpec, NicSpec, OvaInfo, build_ova, semi_random
from reconciler.cli.render import RichReporter, console, err_console
from reconciler.daemon.reconcile import Reconciler, Settings
from reconciler.daemon.state_dir import state_dir_for
from reconciler.gitops._git import identity_env
from reconciler.secrets.resolver import SecretResolver
from reconciler.transfer.digest import disk_digest_of_file

MIB, GIB = 1024**2, 1024**3
MARKER = ".mtv-gitops-demo"
PLAN, NAMESPACE = "demo-plan", "openshift-mtv"


def _scattered(capacity: int, data: int, pieces: int, seed: int) -> list[tuple[int, bytes]]:
    """``data`` bytes in ``pieces`` runs spread over the disk, leaving holes between."""
    step, size = capacity // pieces, data // pieces
    return [
        (i * step + (step - size) // 2 // MIB * MIB, semi_random(size, seed * 1000 + i))
        for i in range(pieces)
    ]


def demo_vms() -> list[dict]:
    """The three VMs of the demo: ~3 GiB of virtual disk holding ~300 MiB of data."""
    return [
        dict(
            name="Web_Server 01",
            cpus=2,
            memory_mb=2048,
            firmware="bios",
            os_type="rhel8_64Guest",
            disks=[DiskSpec(512 * MIB, _scattered(512 * MIB, 60 * MIB, 6, 1))],
            nics=[NicSpec("VM Network", "00:50:56:8a:10:01")],
        ),
        dict(
            name="db-two-disks",
            cpus=4,
            cores_per_socket=2,
            memory_mb=4096,
            firmware="efi",
            os_type="rhel9_64Guest",
            disks=[
                DiskSpec(256 * MIB, _scattered(256 * MIB, 40 * MIB, 4, 2)),
                DiskSpec(256 * MIB, _scattered(256 * MIB, 40 * MIB, 4, 3)),
            ],
            nics=[
                NicSpec("VM Network", "00:50:56:8a:20:01"),
                NicSpec("backend", "00:50:56:8a:20:02"),
            ],
        ),
        dict(
            name="analytics-big",
            cpus=2,
            memory_mb=8192,
            firmware="bios",
            os_type="ubuntu64Guest",
            disks=[DiskSpec(2 * GIB, _scattered(2 * GIB, 160 * MIB, 16, 4))],
            nics=[NicSpec("VM Network", "00:50:56:8a:30:01")],
        ),
    ]


def example_repo() -> Path:
    """examples/repo from the source tree (the demo runs from a checkout or an sdist)."""
    here = Path(__file__).resolve().parents[2] / "examples" / "repo"
    if here.is_dir():
        return here
    return Path(str(resources.files("reconciler"))).parent / "examples" / "repo"


def prepare(workspace: Path) -> None:
    if workspace.exists():
        if not (workspace / MARKER).exists() and any(workspace.iterdir()):
            raise SystemExit(f"{workspace} exists and is not a demo workspace; choose another")
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    (workspace / MARKER).write_text("made by mtv-gitops demo; safe to delete\n")


def build_ovas(folder: Path) -> list[OvaInfo]:
    folder.mkdir(parents=True, exist_ok=True)
    specs = demo_vms()
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        jobs = [
            pool.submit(build_ova, folder / f"{s['name'].replace(' ', '_')}.ova", **s)
            for s in specs
        ]
        return [j.result() for j in jobs]


def seed_remote(workspace: Path, ova_dir: Path) -> Path:
    """Bare remote seeded from examples/repo, with the OVA provider pointed at ``ova_dir``."""
    seed = workspace / "seed"
    shutil.copytree(example_repo(), seed)
    providers = seed / "providers" / "providers.yaml"
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    docs = list(yaml.load_all(providers.read_text()))
    for doc in docs:
        if doc["spec"]["type"] == "ova":
            doc["spec"]["url"] = str(ova_dir)
    with providers.open("w") as f:
        yaml.dump_all(docs, f)
    return push_seed(workspace, seed, "Plan: migrate three VMs from OVA files")


def push_seed(workspace: Path, seed: Path, message: str) -> Path:
    """Commit the folder ``seed`` as the user, make it the bare ``DIR/remote.git`` (``seed``
    removed) and clone it to ``DIR/repo``; returns the remote."""
    env = identity_env("Demo User", "demo@example.com")
    repo = git.Repo.init(seed, initial_branch="main")
    with repo.git.custom_environment(**env):
        repo.git.add(A=True)
        repo.git.commit(m=message)
    remote = workspace / "remote.git"
    git.Repo.clone_from(str(seed), str(remote), bare=True)
    shutil.rmtree(seed)
    git.Repo.clone_from(str(remote), str(workspace / "repo"))
    return remote


def run_demo(workspace: Path, verify: bool = True) -> int:
    """The whole demo; returns the exit code."""
    started = time.monotonic()
    workspace = workspace.resolve()
    prepare(workspace)
    console.rule("mtv-gitops demo")
    console.print(f"workspace: {workspace}")
    t0 = time.monotonic()
    ovas = build_ovas(workspace / "ova")
    virtual = sum(d.capacity for o in ovas for d in o.disks)
    console.print(
        f"built {len(ovas)} OVA files ({virtual / GIB:.1f} GiB of virtual disk) in "
        f"{time.monotonic() - t0:.1f}s -> {workspace / 'ova'}"
    )
    remote = seed_remote(workspace, workspace / "ova")
    console.print(f"git remote {remote}, clone {workspace / 'repo'}")
    os.environ.pop("MTV_GITOPS_SECRETS", None)
    settings = Settings(
        source=str(workspace / "repo"),
        state_dir=state_dir_for(str(workspace / "repo")),
        cluster=workspace / "cluster",
        secrets=SecretResolver(environ={}),
        reporter=RichReporter(),
        verify=verify,
    )
    rec = Reconciler(settings)
    t0 = time.monotonic()
    try:
        with settings.reporter:
            for _ in range(5):
                result = rec.run_pass()
                if not result.work_left:
                    break
        seconds = time.monotonic() - t0
        ok = _report(workspace, ovas, rec, result, verify)
    finally:
        rec.close()
    exe = shutil.which("mtv-gitops") or str(Path(sys.executable).parent / "mtv-gitops")
    repo = workspace / "repo"
    console.print(
        f"\nlook around:\n  {exe} status {repo}\n  {exe} plan {repo}\n  {exe} lint {repo}"
    )
    console.print(f"reconcile took {seconds:.1f}s; whole demo {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def _report(workspace: Path, ovas: list[OvaInfo], rec: Reconciler, result, verify: bool) -> bool:
    key = f"{NAMESPACE}/{PLAN}"
    records = {v.vm_name: v for v in rec.store.vms(key)}
    table = Table(title="Migrated VMs", title_justify="left")
    for col in ("Source VM", "Target VM", "Result", "Disks (target digest = source digest)"):
        table.add_column(col)
    ok = True
    for ova in ovas:
        v = records.get(ova.name)
        if v is None:
            table.add_row(ova.name, "-", "[red]not run[/]", "")
            ok = False
            continue
        checks = []
        decision = next(d for d in result.decisions if d.key == key)
        plan = next(p for p in decision.vms if p.vm_id == v.vm_id)
        for built, disk in zip(ova.disks, plan.disks, strict=True):
            image = workspace / "cluster" / plan.namespace / "disks" / f"{disk.pvc_name}.img"
            got = disk_digest_of_file(image) if image.exists() else "missing"
            same = got == built.digest
            ok &= same
            checks.append(f"{disk.pvc_name}: {'[green]match[/]' if same else '[red]DIFFERENT[/]'}")
        ok &= v.result == "Succeeded"
        colour = "green" if v.result == "Succeeded" else "red"
        table.add_row(
            ova.name, v.target_name, f"[{colour}]{v.result or v.phase}[/]", "\n".join(checks)
        )
    console.print(table)
    ns = workspace / "cluster" / "demo-vms"
    console.print(f"VirtualMachine manifests: {ns / 'virtualmachines'}")
    console.print(f"PVC manifests:            {ns / 'pvcs'}")
    console.print(f"disk images (sparse raw): {ns / 'disks'}")
    console.print(
        f"digest check after each copy: {'on' if verify else 'off'}; "
        "final digests above recomputed from the images"
    )
    clone = git.Repo(workspace / "repo")
    clone.remotes.origin.pull()
    console.print("\n$ git log --oneline -- status/   (in DIR/repo)")
    console.print(clone.git.log("--oneline", "--", "status/"))
    if not ok:
        err_console.print("[red]demo failed:[/] see the table above and `mtv-gitops status`")
    return ok
