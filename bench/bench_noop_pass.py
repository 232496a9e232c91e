"""Benchmark: passes over a repo of 1,000 plans that have nothing to do, in the same run.

Run ``python bench/bench_noop_pass.py [--plans 1000 --vms 5]``.  It builds a folder of small
OVA files (the embedded source), a GitOps repo whose plans each name one of those VMs (no
Migration: nothing to migrate), a bare remote and a user's clone, and runs the reconciler in
this process.  The first pass renders and pushes every status file: it is the baseline.  Then
it times a pass with nothing new (the no-op pass) and, after a user commit that changes no
manifest (a README), the pass after an unrelated commit, and, after a commit to one plan,
the full pass that follows (every provider asked again).  For each it prints the seconds, the
ratio against the first pass (<1: cheaper), whether the OVA provider was asked for its
inventory (read from the inventory store's save time), and the status commit it made: files
touched and the length of its subject line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.ova.factory import DiskSpec, NicSpec, build_ova, semi_random  # noqa: E402
from reconciler.daemon.reconcile import Reconciler, Settings  # noqa: E402

MiB = 1024 * 1024
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "repo"
USER = {
    "GIT_AUTHOR_NAME": "Bench User",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench User",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **USER}, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"git {args}: {proc.stderr}")
    return proc.stdout


PLAN = """apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata:
  name: {name}
  namespace: openshift-mtv
spec:
  targetNamespace: {name}
  provider:
    source: {{name: ova-files, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: ova-networks, namespace: openshift-mtv}}
    storage: {{name: ova-storage, namespace: openshift-mtv}}
  vms:
    - name: {vm}
"""


def build(root: Path, plans: int, vms: int) -> tuple[Path, Path]:
    """OVAs, a remote holding the repo, and a user's clone of it; returns (clone, remote)."""
    ova = root / "ova"
    ova.mkdir()
    names = [f"vm-{i}" for i in range(vms)]
    for i, name in enumerate(names):
        build_ova(
            ova / f"{name}.ova",
            name=name,
            cpus=1,
            memory_mb=512,
            disks=[DiskSpec(16 * MiB, [(0, semi_random(MiB, i))])],
            nics=[NicSpec("VM Network", f"00:50:56:02:00:{i:02x}")],
        )
    seed = root / "seed"
    shutil.copytree(EXAMPLE, seed, ignore=shutil.ignore_patterns("plans", "migrations"))
    providers = seed / "providers" / "providers.yaml"
    providers.write_text(providers.read_text().replace("/var/lib/mtv-gitops/ova", str(ova)))
    cfg = seed / ".mtv-gitops.yaml"
    if cfg.exists():
        cfg.write_text(cfg.read_text().replace("statusCommitSeconds: 5", "statusCommitSeconds: 0"))
    (seed / "plans").mkdir()
    for i in range(plans):
        name = f"plan-{i:04d}"
        (seed / "plans" / f"{name}.yaml").write_text(PLAN.format(name=name, vm=names[i % vms]))
    git(root, "init", "-q", "-b", "main", str(seed))
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", f"{plans} plans")
    remote = root / "remote.git"
    git(root, "clone", "-q", "--bare", str(seed), str(remote))
    clone = root / "clone"
    git(root, "clone", "-q", str(remote), str(clone))
    return clone, remote


def inventory_saves(state: Path) -> str:
    """When the inventory store last saved an inventory (to the second): it changes when a
    pass read one from the provider."""
    import sqlite3

    with sqlite3.connect(state / "inventory.db") as con:
        return repr(con.execute("SELECT provider, read_at FROM inventory_providers").fetchall())


def timed_pass(rec: Reconciler, remote: Path) -> tuple[float, int, int, bool]:
    """Seconds of one pass; files in and subject length of its status commit; inventory read."""
    before = git(remote, "rev-parse", "main").strip()
    time.sleep(1.1)  # the inventory store keeps seconds: a read now shows as a new time
    saves = inventory_saves(rec.settings.state_dir)
    start = time.perf_counter()
    rec.run_pass()
    seconds = time.perf_counter() - start
    after = git(remote, "rev-parse", "main").strip()
    files = subject = 0
    if after != before:
        files = len(git(remote, "diff", "--name-only", before, after).split())
        subject = len(git(remote, "log", "-1", "--format=%s", after).rstrip("\n"))
    return seconds, files, subject, inventory_saves(rec.settings.state_dir) != saves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plans", type=int, default=1000)
    ap.add_argument("--vms", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temp dir).")
    args = ap.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-noop-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        clone, remote = build(root, args.plans, args.vms)
        rec = Reconciler(Settings(source=str(clone), state_dir=root / "state"))
        try:
            rows = [("first pass (baseline)", *timed_pass(rec, remote))]
            rows.append(("no-op pass", *timed_pass(rec, remote)))
            git(clone, "pull", "-q", "--rebase", "origin", "main")
            (clone / "README.md").write_text("notes that change no manifest\n")
            git(clone, "add", "README.md")
            git(clone, "commit", "-q", "-m", "a README")
            git(clone, "push", "-q", "origin", "HEAD:main")
            rows.append(("pass after an unrelated commit", *timed_pass(rec, remote)))
            plan = clone / "plans" / "plan-0000.yaml"
            plan.write_text(
                plan.read_text().replace("targetNamespace: plan-0000", "targetNamespace: moved")
            )
            git(clone, "commit", "-q", "-am", "one plan edited")
            git(clone, "push", "-q", "origin", "HEAD:main")
            rows.append(("pass after one plan's edit", *timed_pass(rec, remote)))
        finally:
            rec.close()
        base = rows[0][1]
        print(f"{args.plans} plans over {args.vms} OVA VMs")
        print(f"{'pass':34} {'seconds':>8} {'ratio':>7} {'files':>6} {'subject':>8} inventory")
        for name, seconds, files, subject, read in rows:
            print(
                f"{name:34} {seconds:8.2f} {seconds / base:7.3f} {files:6d} {subject:8d} "
                f"{'read' if read else 'not read'}"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
