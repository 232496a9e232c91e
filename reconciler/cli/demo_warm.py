"""``mtv-gitops demo --warm``: a warm migration of a running VM, cut over by merging a branch.

The source comes from whichever plugin answers ``mtv_gitops_demo(name="warm")`` (the bundled
one runs a VM in the vCenter simulator).  The demo seeds ``DIR/remote.git`` and ``DIR/repo`` with
the source's repo (its login in ``DIR/secrets.yaml``, never in git), then runs reconciler
passes in this process: the initial copy (the cutover is proposed as a branch), two precopy
rounds of what the guest wrote in between, a reviewer's ``git merge --no-ff`` of the branch,
and the cutover.  It prints the rounds, the downtime and the bytes copied during it, and checks
the target image against the source's final content.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, cast

import git
from rich.markup import escape
from rich.table import Table

from reconciler.cli.demo import find_source, prepare, seed_remote
from reconciler.cli.render import RichReporter, console, err_console
from reconciler.daemon.reconcile import PassResult, Reconciler, Settings
from reconciler.daemon.state_dir import state_dir_for
from reconciler.gitops._git import identity_env
from reconciler.manifests.config import load_config
from reconciler.progress.store import VmProgress
from reconciler.secrets.resolver import SecretResolver
from reconciler.sources import SourceError, WarmDemoSource
from reconciler.transfer.digest import disk_digest_of_file

__all__ = ["run_warm_demo"]
FINAL_WRITE = 3  # the guest's writes after the last round: the final delta


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


class _Demo:
    def __init__(
        self, workspace: Path, source: WarmDemoSource, secrets: SecretResolver, verify: bool
    ) -> None:
        self.workspace = workspace
        self.source = source
        self.settings = Settings(
            source=str(workspace / "repo"),
            state_dir=state_dir_for(str(workspace / "repo")),
            cluster=workspace / "cluster",
            secrets=secrets,
            verify=verify,
        )
        config, _ = load_config(workspace / "repo")
        self.interval = config.warm.precopyIntervalSeconds or 3.0
        self.rec = Reconciler(self.settings)
        self.last: PassResult | None = None

    @property
    def branch(self) -> str:
        return f"mtv-gitops/cutover/{self.source.migration}"

    def vm(self) -> VmProgress | None:
        return next(iter(self.rec.store.vms(self.source.plan)), None)

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
        console.print(f"  -> {v.vm_name if v else 'VM'}: {v.phase if v else 'not started'}")
        return v

    def sleep_until_next_round(self) -> None:
        """Until the paused VM's next round is due (what the daemon's wake-up does)."""
        from reconciler.pipeline.warm import epoch_of

        wake = self.last.wake_at if self.last is not None else None
        if wake is None and self.warm().get("nextPrecopyAt"):
            wake = epoch_of(self.warm()["nextPrecopyAt"])
        delay = max(0.0, (wake or time.time() + self.interval) - time.time()) + 0.3
        console.print(
            f"  waiting {delay:.1f}s for the next precopy round (every {self.interval:g}s)"
        )
        time.sleep(delay)

    def close(self) -> None:
        self.rec.close()


def _merge_as_reviewer(workspace: Path, branch: str) -> str:
    """In DIR/repo: fetch the proposal, merge it with --no-ff, push main; returns its diff."""
    repo = git.Repo(workspace / "repo")
    with repo.git.custom_environment(**identity_env("Demo Reviewer", "reviewer@example.com")):
        repo.git.pull("--rebase", "origin", "main")
        repo.git.fetch("origin", branch)
        diff = repo.git.diff(f"HEAD...origin/{branch}", "--unified=0")
        repo.git.merge("--no-ff", "-m", f"Merge {branch}: cut over", f"origin/{branch}")
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


def run_warm_demo(workspace: Path, verify: bool = True) -> int:
    """The whole warm demo; returns the exit code."""
    started = time.monotonic()
    workspace = workspace.resolve()
    prepare(workspace)
    source = cast(WarmDemoSource, find_source("warm", workspace))
    console.rule("mtv-gitops demo --warm")
    console.print(f"workspace: {workspace}")
    try:
        source.start(log=lambda line: console.print(escape(line)))
    except SourceError as exc:
        err_console.print(f"[red]demo --warm cannot run:[/] {escape(str(exc))}")
        source.stop()
        return 1
    demo: _Demo | None = None
    try:
        remote, secrets = seed_remote(workspace, source)
        where = f"in {secrets.path} (not in git)" if secrets.path else "not needed"
        console.print(
            f"git remote {remote}, clone {workspace / 'repo'}; the Plan says warm: true; "
            f"the source's login is {where}"
        )
        demo = _Demo(workspace, source, secrets, verify)
        ok = _run(demo)
    except Exception as exc:  # noqa: BLE001 - the demo says what broke, in red, and exits 1
        err_console.print(f"[red]demo --warm failed:[/] {type(exc).__name__}: {escape(str(exc))}")
        ok = False
    finally:
        if demo is not None:
            demo.close()
        source.stop()
    exe = shutil.which("mtv-gitops") or str(Path(sys.executable).parent / "mtv-gitops")
    console.print(f"\nlook around:\n  {exe} status {workspace / 'repo'}")
    console.print(f"whole demo {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def _run(demo: _Demo) -> bool:
    ws, source = demo.workspace, demo.source
    v = demo.run_pass("initial snapshot and full copy while the VM runs")
    warm = demo.warm()
    if v is None or v.phase != "CopyingPaused" or not warm.get("cutoverBranch"):
        err_console.print(f"[red]expected the VM to wait between rounds, got {v}[/]")
        return False
    console.print(f"  cutover proposed on branch [bold]{escape(warm['cutoverBranch'])}[/]")
    if warm.get("cutoverInstruction"):
        console.print(f"  status says: {escape(warm['cutoverInstruction'])}")

    for k in (1, 2):
        console.print(f"\nthe guest writes: {source.guest_write(k)}")
        demo.sleep_until_next_round()
        v = demo.run_pass(f"precopy round {k}: only what changed since the last snapshot")
        if v is None or len(_precopy_rounds(demo.warm())) < k:
            err_console.print(f"[red]precopy round {k} did not run: {v}[/]")
            return False
    console.print(_rounds_table(demo.warm()))

    console.print(f"\n[bold]a reviewer merges {escape(demo.branch)}[/] (in {ws / 'repo'}):")
    diff = _merge_as_reviewer(ws, demo.branch)
    for line in diff.splitlines():
        if line[:1] in "+-" and not line.startswith(("+++", "---")):
            console.print(f"  {escape(line)}")
    console.print(f"\nthe guest writes after the last round: {source.guest_write(FINAL_WRITE)}")

    for _ in range(6):
        v = demo.run_pass("cutover: power off, final snapshot, final delta, VirtualMachine")
        if v is None or v.finished:
            break
        if demo.last is not None and demo.last.wake_at:
            demo.sleep_until_next_round()
    return _report(demo, v)


def _report(demo: _Demo, v: VmProgress | None) -> bool:
    ws, source = demo.workspace, demo.source
    warm = demo.warm()
    name = v.vm_name if v is not None else "the VM"
    console.print()
    console.print(_rounds_table(warm))
    ok = v is not None and v.result == "Succeeded"
    if v is None or not ok:
        error = (v.error or {}) if v is not None else {}
        err_console.print(
            f"[red]{name} did not complete: {v.phase if v else 'not run'} "
            f"{escape(str(error.get('message', '')))}[/]"
        )
    final = [r for r in warm.get("precopies", []) if r.get("final")]
    ok &= len(_precopy_rounds(warm)) >= 2 and len(final) == 1
    images = sorted((ws / "cluster" / source.target_namespace / "disks").glob("*.img"))
    size = images[0].stat().st_size if images else 0
    downtime, cut = warm.get("downtimeSeconds"), warm.get("cutoverBytes")
    if downtime is None or cut is None:
        err_console.print("[red]no downtime or cutover bytes recorded[/]")
        ok = False
    else:
        console.print(
            f"[bold]downtime {downtime} s[/] (source powered off at {warm.get('powerOffAt')} until "
            "the VirtualMachine was created)"
        )
        share = f" ({100 * cut / size:.2f}%)" if size else ""
        console.print(
            f"[bold]cutover bytes: {_size(cut)}[/] ({cut:,} bytes) copied during the {downtime} s "
            f"downtime, of a {_size(size)} disk{share}"
        )
        wrote = source.written_bytes(FINAL_WRITE)
        console.print(
            f"cutover bytes / bytes the guest wrote after the last round: {cut:,} / {wrote:,} ="
            f" {cut / wrote:.2f} (goal <= 1.5)"
        )

    [want] = next(iter(source.disks().values()))
    same = len(images) == 1 and disk_digest_of_file(images[0]) == want
    ok &= same
    if same:
        console.print(
            f"target image {images[0]} is byte-identical to the source disk's final content "
            f"(digest {want[:24]}…, all guest writes included)"
        )
    else:
        err_console.print(
            f"[red]target image(s) {[str(i) for i in images]} differ from the source disk's "
            "final content[/]"
        )
    left = source.snapshots()
    ok &= left == 0
    colour = "green" if left == 0 else "red"
    console.print(f"[{colour}]{left} snapshots left on the source VM[/]")
    power = source.power_state()
    ok &= power == "Off"
    console.print(f"source VM {name}: {power}")
    vms = ws / "cluster" / source.target_namespace / "virtualmachines"
    manifest = vms / f"{v.target_name if v else ''}.yaml"
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
