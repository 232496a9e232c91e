"""Installed as users install it: the wheel, not the checkout, runs both demos.

The wheel is built offline (``pip wheel --no-build-isolation``) from a copy of what the
distribution is made of, so the checkout stays clean; it is cached under ~/.cache/mtv-gitops by
the digest of those files.  Each test installs it with ``--no-deps`` into a fresh virtual
environment and makes exactly the dependencies ``pip install .`` (or ``.[vsphere]``) would bring
visible through a folder of links to this environment's copies: fast and offline, and a module
outside that set (pyVmomi for a plain install) is really absent.  Every command runs from a
temporary folder with no PYTHONPATH, so nothing of the checkout can be imported by accident.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# what the distribution is built from (as deploy/Containerfile copies it)
SOURCES = ("pyproject.toml", "README.md", "reconciler", "plugins", "rules", "examples")
CACHE = Path.home() / ".cache" / "mtv-gitops"
DIST = "mtv-gitops"
# wheels of other trees: this many are kept, and none used in the last two hours is removed
# (a run installs its wheel within minutes of touching it)
KEEP_WHEELS = 4
KEEP_UNUSED_SECONDS = 2 * 3600


def _digest() -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of its sources (cached by their digest)."""
    out = CACHE / f"wheel-{_digest()}"
    found = sorted(out.glob("mtv_gitops-*.whl"))
    if found:
        os.utime(out)
        prune_wheels(CACHE, keep=out)
        return found[0]
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    building = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(building), str(src)],
        check=True,
        capture_output=True,
        text=True,
        cwd=building,
    )
    [built] = building.glob("mtv_gitops-*.whl")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{built.name}.{os.getpid()}"
    shutil.copy2(built, partial)
    partial.rename(out / built.name)  # a concurrent run sees the whole wheel or none
    prune_wheels(CACHE, keep=out)
    return out / built.name


def prune_wheels(cache: Path, keep: Path, now: float | None = None) -> list[Path]:
    """Remove the cached wheels of older trees: every checkout or commit tested here leaves
    one, and nothing else would ever remove them.  The newest ``KEEP_WHEELS`` stay, and so
    does any used in the last ``KEEP_UNUSED_SECONDS`` (another run may be installing it)."""
    now = time.time() if now is None else now
    others = sorted(
        (p for p in cache.glob("wheel-*") if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for old in others[KEEP_WHEELS - 1 :]:
        if now - old.stat().st_mtime > KEEP_UNUSED_SECONDS:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def _closure(extras: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``pip install mtv-gitops[extras]`` needs, the project
    itself aside: its requirements (with those extras) and theirs, recursively."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [
        Requirement(r)
        for r in importlib.metadata.requires(DIST) or []
        if _wanted(Requirement(r), extras)
    ]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python
        seen[name] = dist
        todo += [Requirement(r) for r in dist.requires or [] if _wanted(Requirement(r), req.extras)]
    return list(seen.values())


def _wanted(req: Requirement, extras: tuple[str, ...] | set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (*extras, ""))


def _venv(root: Path, wheel: Path, extras: tuple[str, ...]) -> Path:
    """A fresh environment with the wheel installed and the dependencies of
    ``mtv-gitops[extras]`` (only those) linked in; returns its bin folder."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        + ["--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    )
    deps = root / "deps"
    deps.mkdir()
    for dist in _closure(extras):
        for file in dist.files or []:
            top = file.parts[0]
            where = Path(str(dist.locate_file(top)))
            if top == ".." or (deps / top).exists() or not where.exists():
                continue
            (deps / top).symlink_to(where)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_mtv_gitops_test_deps.pth").write_text(f"{deps}\n")
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MTV_GITOPS_SECRETS")}
    env |= {"COLUMNS": "200", "NO_COLOR": "1", "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}"}
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_a_plain_install_runs_the_cold_demo_without_pyvmomi(wheel: Path, tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path, wheel, extras=())
    here = tmp_path / "cwd"
    here.mkdir()
    probe = _run(
        bin_dir,
        "python",
        "-c",
        "import importlib.util, reconciler, plugins; "
        "print(reconciler.__file__); print(importlib.util.find_spec('pyVmomi'))",
        cwd=here,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    where, pyvmomi = probe.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "venv")  # the wheel's copy, not the checkout
    assert pyvmomi == "None"  # pyvmomi comes with mtv-gitops[vsphere] only

    demo = _run(
        bin_dir, "mtv-gitops", "demo", "--workspace", str(tmp_path / "demo"), cwd=here, timeout=300
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out
    assert out.count(": match") == 4 and "Succeeded" in out  # three VMs, four disks

    # a vSphere Provider is fine to write, and lint says which extra the source needs
    repo = tmp_path / "demo" / "repo"
    providers = repo / "providers" / "providers.yaml"
    providers.write_text(
        providers.read_text()
        .replace("type: ova", "type: vsphere")
        .replace("url: /", "url: https://vcenter.example.com/sdk #")
    )
    lint = _run(bin_dir, "mtv-gitops", "lint", str(repo), cwd=here, timeout=120)
    assert "pip install 'mtv-gitops[vsphere]'" in lint.stdout + lint.stderr, lint.stdout


def test_an_install_with_the_vsphere_extra_runs_the_warm_demo(wheel: Path, tmp_path: Path) -> None:
    from tests.support.vsphere import simulator_binary

    simulator_binary()  # built (or the test fails saying what is missing) outside the timeout
    bin_dir = _venv(tmp_path, wheel, extras=("vsphere",))
    here = tmp_path / "cwd"
    here.mkdir()
    demo = _run(
        bin_dir,
        "mtv-gitops",
        "demo",
        "--warm",
        "--workspace",
        str(tmp_path / "warm"),
        cwd=here,
        timeout=300,
    )
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, out
    assert "byte-identical" in out and "0 snapshots left on the source VM" in out


def test_old_wheels_of_other_trees_are_pruned_but_recent_ones_stay(tmp_path: Path) -> None:
    hour = 3600
    now = 1000 * hour
    ages = {"current": 50, "a": 3, "b": 4, "c": 5, "d": 6, "e": 7, "recent": 1}
    for name, age in ages.items():
        folder = tmp_path / f"wheel-{name}"
        folder.mkdir()
        os.utime(folder, (now - age * hour, now - age * hour))
    (tmp_path / "vcsim-x").mkdir()
    os.utime(tmp_path / "vcsim-x", (0, 0))

    removed = prune_wheels(tmp_path, keep=tmp_path / "wheel-current", now=now)

    assert sorted(p.name for p in removed) == ["wheel-c", "wheel-d", "wheel-e"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["vcsim-x", "wheel-a", "wheel-b", "wheel-current", "wheel-recent"]
