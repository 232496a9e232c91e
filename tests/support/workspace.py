"""A real GitOps setup per test: OVA files, a bare remote, a user clone and the mtv-gitops CLI."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import git
from ruamel.yaml import YAML

from plugins.ova.factory import DiskSpec, NicSpec, OvaInfo, build_ova, semi_random
from reconciler.gitops._git import identity_env

MIB = 1024 * 1024
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "repo"
CLI = [sys.executable, "-m", "reconciler.cli"]
USER_ENV = identity_env("Test User", "user@example.com")


def small_vm(
    name: str,
    seed: int,
    data_mib: int = 4,
    capacity_mib: int = 64,
    disks: int = 1,
    nics: tuple[str, ...] = ("VM Network",),
) -> dict:
    """A VM spec for build_ova with ``data_mib`` MiB of known content per disk."""
    specs = [
        DiskSpec(capacity_mib * MIB, [(8 * MIB, semi_random(data_mib * MIB, seed * 10 + i))])
        for i in range(disks)
    ]
    nic_specs = [NicSpec(n, f"00:50:56:01:{seed:02x}:{i:02x}") for i, n in enumerate(nics)]
    return dict(name=name, cpus=1, memory_mb=1024, disks=specs, nics=nic_specs)


@dataclass
class Workspace:
    root: Path
    ova: Path
    remote: Path
    clone: Path
    state: Path
    cluster: Path
    ovas: dict[str, OvaInfo] = field(default_factory=dict)

    def cli(
        self, *args: str, check: bool = False, env: dict | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
        proc = subprocess.run(
            [*CLI, *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            cwd=self.root,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def reconcile(self, *extra: str, **kw) -> subprocess.CompletedProcess:
        return self.cli(
            "reconcile",
            str(self.clone),
            "--state-dir",
            str(self.state),
            "--cluster",
            str(self.cluster),
            *extra,
            **kw,
        )

    def add_ova(self, spec: dict, **kw) -> OvaInfo:
        info = build_ova(self.ova / f"{spec['name'].replace(' ', '_')}.ova", **spec, **kw)
        self.ovas[spec["name"]] = info
        return info

    def user_commit(self, files: dict[str, str | None], message: str) -> str:
        """Commit and push as the user, from the user's clone (pulling first)."""
        repo = git.Repo(self.clone)
        with repo.git.custom_environment(**USER_ENV):
            repo.git.pull("--rebase", "origin", "main")
            for rel, text in files.items():
                path = self.clone / rel
                if text is None:
                    path.unlink()
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
            repo.git.add(A=True)
            repo.git.commit(m=message)
            for attempt in range(20):  # as a person would: pull --rebase and push again
                try:
                    repo.git.push("origin", "HEAD:main")
                    break
                except git.GitCommandError:
                    if attempt == 19:
                        raise
                    repo.git.pull("--rebase", "origin", "main")
        return repo.head.commit.hexsha

    def remote_file(self, rel: str) -> str | None:
        repo = git.Repo(self.remote)
        try:
            return repo.git.show(f"main:{rel}")
        except git.GitCommandError:
            return None

    def status(self, kind: str, name: str, ns: str = "openshift-mtv") -> dict:
        text = self.remote_file(f"status/{kind}/{ns}/{name}.yaml")
        assert text is not None, f"no status for {kind} {ns}/{name}"
        return YAML(typ="safe").load(text)

    def log_files(self, sha: str) -> list[str]:
        out = git.Repo(self.remote).git.show("--name-only", "--format=", sha)
        return [line for line in out.splitlines() if line]

    def log(self, *args: str) -> list[str]:
        return git.Repo(self.remote).git.log("--format=%H %ae %s", *args, "main").splitlines()


def write_repo(seed: Path, ova_dir: Path, vm_names: list[str], plan: str = "demo-plan") -> None:
    """examples/repo with the OVA provider at ``ova_dir`` and a plan listing ``vm_names``."""
    shutil.copytree(EXAMPLE, seed, ignore=shutil.ignore_patterns("plans", "migrations"))
    yaml = YAML(typ="rt")
    providers = seed / "providers" / "providers.yaml"
    docs = list(yaml.load_all(providers.read_text()))
    docs[0]["spec"]["url"] = str(ova_dir)
    with providers.open("w") as f:
        yaml.dump_all(docs, f)
    cfg = seed / ".mtv-gitops.yaml"
    cfg.write_text(cfg.read_text().replace("statusCommitSeconds: 5", "statusCommitSeconds: 0"))
    (seed / "plans").mkdir()
    (seed / "plans" / f"{plan}.yaml").write_text(plan_yaml(plan, vm_names))
    (seed / "migrations").mkdir()
    (seed / "migrations" / f"{plan}-1.yaml").write_text(migration_yaml(f"{plan}-1", plan))


def plan_yaml(plan: str, vm_names: list[str], target_ns: str = "demo-vms") -> str:
    vms = "".join(f"    - name: {n}\n" for n in vm_names)
    return f"""apiVersion: forklift.konveyor.io/v1beta1
kind: Plan
metadata:
  name: {plan}
  namespace: openshift-mtv
spec:
  targetNamespace: {target_ns}
  provider:
    source: {{name: ova-files, namespace: openshift-mtv}}
    destination: {{name: host, namespace: openshift-mtv}}
  map:
    network: {{name: ova-networks, namespace: openshift-mtv}}
    storage: {{name: ova-storage, namespace: openshift-mtv}}
  vms:
{vms}"""


def migration_yaml(name: str, plan: str) -> str:
    return f"""apiVersion: forklift.konveyor.io/v1beta1
kind: Migration
metadata:
  name: {name}
  namespace: openshift-mtv
spec:
  plan: {{name: {plan}, namespace: openshift-mtv}}
"""


def make_workspace(root: Path, vms: list[dict], **build_kw) -> Workspace:
    ws = Workspace(
        root, root / "ova", root / "remote.git", root / "repo", root / "state", root / "cluster"
    )
    ws.ova.mkdir(parents=True)
    for spec in vms:
        ws.add_ova(spec, **build_kw.get(spec["name"], {}))
    seed = root / "seed"
    write_repo(seed, ws.ova, [s["name"] for s in vms])
    repo = git.Repo.init(seed, initial_branch="main")
    with repo.git.custom_environment(**USER_ENV):
        repo.git.add(A=True)
        repo.git.commit(m="initial plan")
    git.Repo.clone_from(str(seed), str(ws.remote), bare=True)
    shutil.rmtree(seed)
    git.Repo.clone_from(str(ws.remote), str(ws.clone))
    return ws


def throttle(ws, mib_per_s: int) -> None:
    """Cap transfers (a user commit of ``transfer.maxMiBps``): a copy meant to be interrupted
    lasts long enough for the interruption to land in it, however slow the machine."""
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit(
        {".mtv-gitops.yaml": cfg.replace("verify: true", f"verify: true\n  maxMiBps: {mib_per_s}")},
        f"cap transfers at {mib_per_s} MiB/s",
    )


def unthrottle(ws) -> None:
    """Lift the transfer rate cap ``throttle`` set (a user commit)."""
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    lines = [line for line in cfg.splitlines(keepends=True) if "maxMiBps:" not in line]
    ws.user_commit({".mtv-gitops.yaml": "".join(lines)}, "lift the transfer cap")


def last_read(ws) -> str | None:
    """The revision the reconciler last looked at (its state store), None before its first."""
    db = ws.state / "progress.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=5) as con:
            row = con.execute("SELECT value FROM kv WHERE key='git.last_read'").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def start_reconcile(ws) -> subprocess.Popen:
    """``mtv-gitops reconcile`` (until idle) as a child process, its output piped."""
    return subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state),
         "--cluster", str(ws.cluster)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def chunks_done(ws) -> int:
    """Chunks the reconciler's state store says are copied (0 before it exists)."""
    db = ws.state / "progress.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT count(*) FROM chunks").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def controller_yaml(limit: int) -> str:
    return f"""apiVersion: forklift.konveyor.io/v1beta1
kind: ForkliftController
metadata:
  name: forklift-controller
  namespace: openshift-mtv
spec:
  feature_ui_plugin: "true"
  controller_max_vm_inflight: {limit}
"""


def limit_and_throttle(ws, limit: int, mib_per_s: int) -> None:
    """``controller_max_vm_inflight: limit`` and a transfer cap, in one user commit."""
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit(
        {
            ".mtv-gitops.yaml": cfg.replace(
                "verify: true", f"verify: true\n  maxMiBps: {mib_per_s}"
            ),
            "controller/forklift-controller.yaml": controller_yaml(limit),
        },
        f"at most {limit} VM(s) in flight, copies capped at {mib_per_s} MiB/s",
    )


class ProcessOutput:
    """The lines a child process prints, read in a thread as they come."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line.rstrip())

    def passes(self) -> int:
        return sum(1 for line in self.lines if line.startswith("pass at "))

    def finish(self, timeout: float = 120) -> None:
        """Wait until the process closed its output (after it exited): every line is read."""
        self._t.join(timeout)
        assert not self._t.is_alive(), "the process kept its output open"


def wait_until(pred, timeout: float = 120, why: Callable[[], str] = lambda: "") -> None:
    """Poll *pred* until it holds; *timeout* is only the safety net of a hung test (generous:
    a busy machine is slow, never wrong); *why* says what was seen, when it times out."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out\n{why()}"
        time.sleep(0.1)
