"""A third party adds a source by shipping a package: no line of ``reconciler/`` changes.

``tests/plugins/example_source`` (its own pyproject, the ``mtv_gitops.sources`` entry point,
type ``example``, its own Rego package and default rule) is pip-installed into a folder of its
own, which only the CLI subprocesses of this test see on their path: the rest of the suite
never meets the ``example`` type.  A VM migrates from it to the local target through the real
CLI (``reconcile``), and the concern its rule raises shows in the status pushed to git.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
from ruamel.yaml import YAML

from plugins.ova.factory import semi_random
from reconciler.gitops._git import identity_env

pytestmark = pytest.mark.integration

PLUGIN_SRC = Path(__file__).resolve().parent / "example_source"
CACHE = Path.home() / ".cache" / "mtv-gitops"
MIB = 1024 * 1024
API = "forklift.konveyor.io/v1beta1"
REPO = {
    "providers/providers.yaml": f"""apiVersion: {API}
kind: Provider
metadata: {{name: lab, namespace: openshift-mtv}}
spec:
  type: example
  url: {{url}}
---
apiVersion: {API}
kind: Provider
metadata: {{name: host, namespace: openshift-mtv}}
spec: {{type: openshift, url: ""}}
""",
    "maps/maps.yaml": f"""apiVersion: {API}
kind: NetworkMap
metadata: {{name: net, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: lab}}
    destination: {{name: host}}
  map:
    - source: {{name: example-net}}
      destination: {{type: pod}}
---
apiVersion: {API}
kind: StorageMap
metadata: {{name: sto, namespace: openshift-mtv}}
spec:
  provider:
    source: {{name: lab}}
    destination: {{name: host}}
  map:
    - source: {{name: example-store}}
      destination: {{storageClass: standard}}
""",
    "plans/plan.yaml": f"""apiVersion: {API}
kind: Plan
metadata: {{name: lab-plan, namespace: openshift-mtv}}
spec:
  targetNamespace: lab-vms
  provider:
    source: {{name: lab}}
    destination: {{name: host}}
  map:
    network: {{name: net}}
    storage: {{name: sto}}
  vms:
    - name: old-app
""",
    "migrations/m1.yaml": f"""apiVersion: {API}
kind: Migration
metadata: {{name: lab-plan-1, namespace: openshift-mtv}}
spec:
  plan: {{name: lab-plan}}
""",
    ".mtv-gitops.yaml": "statusCommitSeconds: 0\n",
}


def _digest(folder: Path) -> str:
    """Identity of the plugin's sources, so a changed plugin is installed again."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "egg-info" in path.as_posix() or "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def install_example_plugin() -> Path:
    """``pip install --target`` of the example plugin, built offline from a copy of its folder
    (the checkout stays clean); cached under ~/.cache/mtv-gitops by the sources' digest."""
    target = CACHE / f"example-source-{_digest(PLUGIN_SRC)}"
    if (target / "mtv_gitops_example" / "plugin.py").exists():
        return target
    building = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    src = building / "src"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(building / "site"),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    (building / "site").rename(target)
    shutil.rmtree(building)
    return target


def _cli(*args: str, site: Path | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("MTV_GITOPS_SECRETS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [*([str(site)] if site else []), str(Path(__file__).resolve().parents[2])]
    )
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )


def _workspace(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """The example source's folder (one VM, tagged legacy, one 16 MiB disk with holes) and a
    user's clone of a bare remote holding the repo.  Returns (clone, remote, disk bytes)."""
    lab = tmp_path / "lab"
    lab.mkdir()
    disk = bytearray(16 * MIB)
    disk[MIB : 3 * MIB] = semi_random(2 * MIB, 7)
    disk[12 * MIB : 12 * MIB + 4096] = semi_random(4096, 8)
    (lab / "old-app.img").write_bytes(disk)
    vms = {"vms": [{"id": "vm-1", "name": "old-app", "tags": ["legacy"], "disks": ["old-app.img"]}]}
    (lab / "vms.json").write_text(json.dumps(vms))
    seed = tmp_path / "seed"
    for rel, text in REPO.items():
        path = seed / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{url}", str(lab)))
    repo = git.Repo.init(seed, initial_branch="main")
    with repo.git.custom_environment(**identity_env("Test User", "user@example.com")):
        repo.git.add(A=True)
        repo.git.commit(m="Plan: migrate old-app from the example source")
    remote = tmp_path / "remote.git"
    git.Repo.clone_from(str(seed), str(remote), bare=True)
    clone = tmp_path / "clone"
    git.Repo.clone_from(str(remote), str(clone))
    return clone, remote, bytes(disk)


def test_a_vm_migrates_from_a_pip_installed_third_party_source(tmp_path: Path) -> None:
    site = install_example_plugin()
    clone, remote, disk = _workspace(tmp_path)

    # without the package, the type is unknown: lint names the file, the line and what is there
    bare = _cli("lint", str(clone), site=None, cwd=tmp_path)
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert "providers/providers.yaml:5:" in bare.stdout
    assert "no installed plugin handles provider type 'example'" in bare.stdout
    assert "(installed: openshift, openstack, ova, ovirt, vsphere)" in bare.stdout

    with_plugin = _cli("lint", str(clone), site=site, cwd=tmp_path)
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr

    state, cluster = tmp_path / "state", tmp_path / "cluster"
    run = _cli(
        "reconcile",
        str(clone),
        "--state-dir",
        str(state),
        "--cluster",
        str(cluster),
        site=site,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    [image] = (cluster / "lab-vms" / "disks").glob("*.img")
    assert image.read_bytes() == disk
    assert (cluster / "lab-vms" / "virtualmachines" / "old-app.yaml").exists()

    status = git.Repo(remote).git.show("main:status/plan/openshift-mtv/lab-plan.yaml")
    doc = YAML(typ="safe").load(status)["status"]
    [done] = [v for v in doc["migration"]["vms"] if v["name"] == "old-app"]
    assert (done["phase"], done["conditions"][0]["type"]) == ("Completed", "Succeeded")
    [checked] = [v for v in doc["validation"]["vms"] if v["name"] == "old-app"]
    assert [(c["id"], c["category"]) for c in checked["concerns"]] == [
        ("example.legacy", "Warning")
    ]
    warned = {c["type"]: c for c in doc["conditions"]}["VMWarningConcerns"]
    assert warned["items"] == ["old-app (example.legacy)"]
