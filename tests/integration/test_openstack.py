"""OpenStack servers cold-migrated to the local target through git, against real Keystone
and Glance: byte-identical sparse disks, the VM from the flavor and ports, and no temporary
snapshot, volume or image left after success, failure, a kill -9 mid-download or a Glance
restart mid-download."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.plugin_manager import connect
from testpeers.openstack.cloud import Cloud
from tests.support.openstack_repo import openstack_repo
from tests.support.workspace import CLI, small_vm, wait_until

pytestmark = pytest.mark.integration
load = YAML(typ="safe").load


@pytest.fixture
def cloud(openstack_cloud: Cloud) -> Iterator[Cloud]:
    """The shared cloud, its servers put back as seeded afterwards (web on, db off)."""
    yield openstack_cloud
    s, seeded = openstack_cloud.standins, openstack_cloud.extra["seed"]
    s.fail_uploads = False
    s.set_status(seeded["web"]["id"], "ACTIVE")
    s.set_status(seeded["db"]["id"], "SHUTOFF")


def leftovers(cloud: Cloud) -> list[str]:
    conn = connect("openstack", cloud.auth_url, cloud.secret(), {})
    try:
        return conn.temporaries()
    finally:
        conn.close()


def same_file(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def check_target(ws, cloud: Cloud) -> None:
    """Both servers Completed; every volume byte-identical on the target with its holes."""
    plan = ws.status("plan", "os-plan")["status"]
    vms = {v["name"]: v for v in plan["migration"]["vms"]}
    assert {n: v["phase"] for n, v in vms.items()} == {"web": "Completed", "db": "Completed"}
    ns = ws.cluster / "os-vms"
    for name, vols in cloud.extra["seed"]["volumes"].items():
        for i, vol in enumerate(vols):
            disk = ns / "disks" / f"{name}-disk-{i}.img"
            assert same_file(disk, cloud.standins.path(vol["id"])), disk
            assert disk.stat().st_blocks * 512 < 16 * 1024 * 1024, "holes were written"


def test_servers_cold_migrate_byte_identical(workspace_factory, cloud: Cloud, tmp_path) -> None:
    ws = workspace_factory([small_vm("steady", 1)])
    env = openstack_repo(ws, cloud, tmp_path)
    listed = ws.cli("inventory", str(ws.clone), "--provider", "openstack", env=env, check=True)
    assert "web" in listed.stdout and "fast" in listed.stdout and "storage" in listed.stdout
    assert cloud.secret()["password"] not in listed.stdout

    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_target(ws, cloud)
    ns = ws.cluster / "os-vms"
    web = load((ns / "virtualmachines" / "web.yaml").read_text())
    db = load((ns / "virtualmachines" / "db.yaml").read_text())
    assert web["spec"]["runStrategy"] == "Always" and db["spec"]["runStrategy"] == "Halted"
    domain = web["spec"]["template"]["spec"]["domain"]
    assert domain["memory"] == {"guest": "2048Mi"}
    assert domain["cpu"]["sockets"] * domain["cpu"]["cores"] == 2
    assert [i["macAddress"] for i in domain["devices"]["interfaces"]] == [
        "fa:16:3e:00:00:01",
        "fa:16:3e:00:00:02",
    ]
    assert web["spec"]["template"]["spec"]["networks"] == [
        {"name": "net-0", "pod": {}},
        {"name": "net-1", "multus": {"networkName": "os-vms/backend"}},
    ]
    classes = [
        load((ns / "pvcs" / f"web-disk-{i}.yaml").read_text())["spec"]["storageClassName"]
        for i in range(2)
    ]
    assert classes == ["standard", "fast"]  # by volume type name, by volume type id
    assert leftovers(cloud) == []
    status = cloud.standins.servers[cloud.extra["seed"]["web"]["id"]]["status"]
    assert status == "SHUTOFF"  # stopped for the copy, as Forklift leaves it


def test_a_failed_upload_leaves_no_temporaries(workspace_factory, cloud: Cloud, tmp_path) -> None:
    cloud.standins.fail_uploads = True
    ws = workspace_factory([small_vm("steady", 1)])
    env = openstack_repo(ws, cloud, tmp_path)
    proc = ws.reconcile("--once", env=env, timeout=600)
    assert proc.returncode != 0
    plan = ws.status("plan", "os-plan")["status"]
    failed = {v["name"]: v for v in plan["migration"]["vms"]}
    assert {v["phase"] for v in failed.values()} <= {"AllocateDisks", "CopyDisks"} or all(
        v.get("error") for v in failed.values()
    ), failed
    assert "upload" in json.dumps(failed), failed
    assert leftovers(cloud) == []


def data_chunks(ws) -> int:
    """Chunks with data of the OpenStack plan's disks the state store says are copied."""
    db = ws.state / "progress.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            sql = "SELECT count(*) FROM chunks WHERE disk LIKE ? AND data_bytes > 0"
            return con.execute(sql, ("openshift-mtv/os-plan/%",)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


# 1 MiB chunks holding data on the seeded volumes: web-root 2, web-data 3, db-root 1
DATA_CHUNKS = 6


def _start(ws, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "reconcile", str(ws.clone), "--state-dir", str(ws.state),
         "--cluster", str(ws.cluster), "--once"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", **env}, start_new_session=True,
    )  # fmt: skip


def test_kill_9_and_a_glance_restart_mid_download(
    workspace_factory, cloud: Cloud, tmp_path
) -> None:
    """A reconciler killed mid-download leaves its temporaries; the next one finds them by
    name, resumes the copy (Glance restarted under it: its reads retry), and deletes them."""
    ws = workspace_factory([small_vm("steady", 1)])
    env = openstack_repo(ws, cloud, tmp_path, mib_per_s=0.5)
    first = _start(ws, env)
    try:
        wait_until(lambda: data_chunks(ws) >= 1, timeout=600, why=lambda: str(first.poll()))
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate()
    left = leftovers(cloud)
    assert any(x.startswith("image ") for x in left), left
    done_before = data_chunks(ws)
    second = _start(ws, env)
    try:
        wait_until(lambda: data_chunks(ws) > done_before, timeout=600)
        cloud.restart_glance()
        assert data_chunks(ws) < DATA_CHUNKS  # Glance went away mid-download
        out, _ = second.communicate(timeout=600)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert second.returncode == 0, out
    check_target(ws, cloud)
    assert leftovers(cloud) == []
