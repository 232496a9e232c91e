"""``mtv-gitops demo``: lay out a workspace, migrate the VMs of a demo source, show what happened.

The source comes from whichever plugin answers ``mtv_gitops_demo(name="cold")`` (the bundled
one builds OVA files); the rest is the core's, as for any repo: ``DIR/remote.git`` a bare
remote seeded with the source's repo files, ``DIR/repo`` a user's clone, ``DIR/cluster`` the
local target, ``DIR/secrets.yaml`` any login the source needs (never in git); the reconciler's
private state is in ``DIR/repo/.git/mtv-gitops``, where later commands on ``DIR/repo`` find it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import git
from rich.markup import escape
from rich.table import Table
from ruamel.yaml import YAML

from reconciler.cli.render import RichReporter, console, err_console
from reconciler.daemon.reconcile import Reconciler, Settings
from reconciler.daemon.state_dir import state_dir_for
from reconciler.gitops._git import identity_env
from reconciler.plugin_manager import demo_source
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import DemoSource, SourceError
from reconciler.transfer.digest import disk_digest_of_file

MARKER = ".mtv-gitops-demo"


def prepare(workspace: Path) -> None:
    if workspace.exists():
        if not (workspace / MARKER).exists() and any(workspace.iterdir()):
            raise SystemExit(f"{workspace} exists and is not a demo workspace; choose another")
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    (workspace / MARKER).write_text("made by mtv-gitops demo; safe to delete\n")


def find_source(name: str, workspace: Path) -> DemoSource:
    """The plugin's demo source, or SystemExit saying no installed plugin has one."""
    source = demo_source(name, workspace)
    if source is None:
        raise SystemExit(f"no installed source plugin has a {name} demo")
    return source


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


def seed_remote(workspace: Path, source: DemoSource) -> tuple[Path, SecretResolver]:
    """The source's repo pushed to ``DIR/remote.git`` and cloned; its Secrets written to
    ``DIR/secrets.yaml`` (mode 0600, never in git).  Returns the remote and a resolver."""
    secrets = source.seed(workspace / "seed")
    remote = push_seed(workspace, workspace / "seed", source.title)
    os.environ.pop("MTV_GITOPS_SECRETS", None)
    if not secrets:
        return remote, SecretResolver(environ={})
    path = workspace / "secrets.yaml"
    path.touch(mode=0o600)
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    with path.open("w") as f:
        yaml.dump({key: dict(values) for key, values in secrets.items()}, f)
    return remote, SecretResolver(path=path, environ={})


def run_demo(workspace: Path, verify: bool = True) -> int:
    """The whole demo; returns the exit code."""
    started = time.monotonic()
    workspace = workspace.resolve()
    prepare(workspace)
    console.rule("mtv-gitops demo")
    console.print(f"workspace: {workspace}")
    source = find_source("cold", workspace)
    try:
        source.start(log=console.print)
    except SourceError as exc:
        err_console.print(f"[red]demo cannot run:[/] {escape(str(exc))}")
        return 1
    try:
        remote, secrets = seed_remote(workspace, source)
        console.print(f"git remote {remote}, clone {workspace / 'repo'}")
        settings = Settings(
            source=str(workspace / "repo"),
            state_dir=state_dir_for(str(workspace / "repo")),
            cluster=workspace / "cluster",
            secrets=secrets,
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
            ok = _report(workspace, source, rec, result, verify)
        finally:
            rec.close()
    finally:
        source.stop()
    exe = shutil.which("mtv-gitops") or str(Path(sys.executable).parent / "mtv-gitops")
    repo = workspace / "repo"
    console.print(
        f"\nlook around:\n  {exe} status {repo}\n  {exe} plan {repo}\n  {exe} lint {repo}"
    )
    console.print(f"reconcile took {seconds:.1f}s; whole demo {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def _report(workspace: Path, source: DemoSource, rec: Reconciler, result, verify: bool) -> bool:
    key = source.plan
    records = {v.vm_name: v for v in rec.store.vms(key)}
    table = Table(title="Migrated VMs", title_justify="left")
    for col in ("Source VM", "Target VM", "Result", "Disks (target digest = source digest)"):
        table.add_column(col)
    ok = True
    for name, digests in source.disks().items():
        v = records.get(name)
        if v is None:
            table.add_row(name, "-", "[red]not run[/]", "")
            ok = False
            continue
        checks = []
        decision = next(d for d in result.decisions if d.key == key)
        plan = next(p for p in decision.vms if p.vm_id == v.vm_id)
        for digest, disk in zip(digests, plan.disks, strict=True):
            image = workspace / "cluster" / plan.namespace / "disks" / f"{disk.pvc_name}.img"
            got = disk_digest_of_file(image) if image.exists() else "missing"
            same = got == digest
            ok &= same
            checks.append(f"{disk.pvc_name}: {'[green]match[/]' if same else '[red]DIFFERENT[/]'}")
        ok &= v.result == "Succeeded"
        colour = "green" if v.result == "Succeeded" else "red"
        table.add_row(name, v.target_name, f"[{colour}]{v.result or v.phase}[/]", "\n".join(checks))
    console.print(table)
    ok &= _report_hooks(records.values(), workspace / "cluster" / source.target_namespace)
    ns = workspace / "cluster" / source.target_namespace
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


def _report_hooks(records, namespace: Path) -> bool:
    """The hooks that ran (each VM's PreHook and PostHook steps, the last lines of their
    logs) and the notes the example's playbooks wrote; False when one failed."""
    ran = [(v, s) for v in records for s in v.steps if s.get("hook")]
    if not ran:
        return True
    table = Table(title="Hooks", title_justify="left")
    for col in ("VM", "Step", "Hook", "Result", "Recap"):
        table.add_column(col)
    ok = True
    for v, step in ran:
        hook = step["hook"]
        result = hook.get("result", step["phase"])
        ok &= result == "Succeeded"
        colour = "green" if result == "Succeeded" else "red"
        last = next((line for line in reversed(hook.get("log", [])) if "ok=" in line), "")
        recap = " ".join(w for w in last.split() if w.split("=")[0] in ("ok", "changed", "failed"))
        table.add_row(
            v.vm_name,
            step["name"],
            str(hook.get("name", "")),
            f"[{colour}]{result}[/]",
            escape(recap or hook.get("message", "")),
        )
    console.print(table)
    notes = namespace / "hook-notes.txt"
    if notes.exists():
        console.print(f"$ cat {notes}   (written by the hooks' playbooks)")
        console.print(escape(notes.read_text().rstrip()))
    return ok
