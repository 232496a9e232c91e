"""kill -9 in the middle of a copy; a user pushing while the reconciler writes status."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import git
import pytest

from reconciler.transfer.digest import disk_digest_of_file
from tests.support.workspace import (
    USER_ENV,
    chunks_done,
    small_vm,
    start_reconcile,
    throttle,
    unthrottle,
)

pytestmark = pytest.mark.integration


def _qemu_nbd_serving(folder) -> list[str]:
    found = []
    for proc in os.listdir("/proc"):
        if not proc.isdigit():
            continue
        try:
            with open(f"/proc/{proc}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if "qemu-nbd" in cmd and str(folder) in cmd:
            found.append(proc)
    return found


def test_kill_9_mid_copy_then_resume(workspace_factory) -> None:
    ws = workspace_factory([small_vm("crashy", 3, data_mib=48, capacity_mib=128)])
    throttle(ws, 4)  # ~12 s of copying: killed in the middle however late the test reacts
    proc = start_reconcile(ws)
    deadline = time.monotonic() + 120  # a safety net, not a measure of speed
    while chunks_done(ws) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = chunks_done(ws)
    assert 3 <= done_at_kill < 32  # 128 MiB / 4 MiB chunks: killed mid-copy
    deadline = time.monotonic() + 120  # qemu-nbd sees its client gone and exits
    while _qemu_nbd_serving(ws.ova) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _qemu_nbd_serving(ws.ova)  # no orphaned qemu-nbd left behind

    unthrottle(ws)  # the rest at full speed
    ws.reconcile(check=True)
    plan = ws.status("plan", "demo-plan")["status"]
    [vm] = plan["migration"]["vms"]
    assert vm["phase"] == "Completed"
    [task] = next(s for s in vm["pipeline"] if s["name"] == "CopyDisks")["tasks"]
    assert int(task["annotations"]["resumedChunks"]) >= 3
    assert task["verified"] is True
    ns = ws.cluster / "demo-vms"
    assert (
        disk_digest_of_file(ns / "disks" / "crashy-disk-0.img") == ws.ovas["crashy"].disks[0].digest
    )
    assert [p.name for p in (ns / "pvcs").iterdir()] == ["crashy-disk-0.yaml"]
    assert [p.name for p in (ns / "virtualmachines").iterdir()] == ["crashy.yaml"]
    assert sorted(p.name for p in (ns / "disks").iterdir()) == ["crashy-disk-0.img"]


def test_user_pushes_while_status_is_written(workspace_factory, tmp_path) -> None:
    ws = workspace_factory([small_vm("busy-1", 4, data_mib=24), small_vm("busy-2", 5, data_mib=24)])
    throttle(ws, 12)
    other = git.Repo.clone_from(str(ws.remote), str(tmp_path / "colleague"))
    proc = start_reconcile(ws)
    pushed: list[str] = []
    try:
        for i in range(6):
            time.sleep(0.4)
            with other.git.custom_environment(**USER_ENV):
                (tmp_path / "colleague" / "notes").mkdir(exist_ok=True)
                (tmp_path / "colleague" / "notes" / f"note-{i}.md").write_text(f"note {i}\n")
                other.git.add(A=True)
                other.git.commit(m=f"colleague note {i}")
                deadline = time.monotonic() + 120  # a safety net: each retry lost a race
                while True:  # a real user's loop: pull --rebase and push again
                    try:
                        other.git.push("origin", "HEAD:main")
                        break
                    except git.GitCommandError:
                        assert time.monotonic() < deadline, "the colleague never got a push in"
                        other.git.pull("--rebase", "origin", "main")
                pushed.append(other.git.log("-1", "--format=%s%n%an"))
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    log = ws.log()
    subjects = [line.split(" ", 2)[2] for line in log]
    for i in range(6):
        assert f"colleague note {i}" in subjects  # every user commit survived
    assert sum(s.startswith("status:") for s in subjects) >= 2  # status kept landing
    files = git.Repo(ws.remote).git.ls_tree("-r", "--name-only", "main").splitlines()
    assert {f"notes/note-{i}.md" for i in range(6)} <= set(files)
    plan = ws.status("plan", "demo-plan")["status"]
    assert {v["phase"] for v in plan["migration"]["vms"]} == {"Completed"}
    # history stayed linear: no merge commits, nothing force-pushed over
    assert git.Repo(ws.remote).git.rev_list("--merges", "main") == ""


def test_own_status_commits_never_trigger_a_pass(workspace_factory) -> None:
    from reconciler.gitops.checkout import GitCheckout

    ws = workspace_factory([small_vm("quiet", 6)])
    ws.reconcile(check=True)
    checkout = GitCheckout(str(ws.clone), ws.state / "checkout")
    head = checkout.sync()
    last_read = (
        sqlite3.connect(ws.state / "progress.db")
        .execute("SELECT value FROM kv WHERE key='git.last_read'")
        .fetchone()[0]
    )
    assert checkout.needs_pass(last_read, head) is False
    ws.user_commit({"plans/extra-note.txt": "not yaml\n"}, "a user change")
    assert checkout.needs_pass(last_read, checkout.sync()) is True


def test_spec_cancel_pushed_mid_copy_stops_that_vm_now(workspace_factory) -> None:
    ws = workspace_factory(
        [small_vm("first", 9, data_mib=48, capacity_mib=128), small_vm("second", 10)]
    )
    throttle(ws, 2)  # ~24 s of copying: the cancel lands inside it however slowly
    proc = start_reconcile(ws)
    deadline = time.monotonic() + 120  # a safety net, not a measure of speed
    while chunks_done(ws) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    mig = (ws.clone / "migrations" / "demo-plan-1.yaml").read_text()
    ws.user_commit(
        {"migrations/demo-plan-1.yaml": mig + "  cancel:\n    - name: first\n"},
        "cancel the first VM",
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    vms = {v["name"]: v for v in ws.status("plan", "demo-plan")["status"]["migration"]["vms"]}
    assert vms["first"]["phase"] == "Canceled", out[-2500:]
    copy = next(s for s in vms["first"]["pipeline"] if s["name"] == "CopyDisks")
    assert copy["phase"] == "Canceled"  # stopped mid-copy, not after it
    assert vms["second"]["phase"] == "Completed"
    disks = ws.cluster / "demo-vms" / "disks"
    assert sorted(p.name for p in disks.iterdir()) == ["second-disk-0.img"]  # cleaned up
    assert ws.status("migration", "demo-plan-1")["status"]["conditions"][0]["type"] == "Canceled"
