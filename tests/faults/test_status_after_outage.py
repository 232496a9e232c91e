"""Issue 13 item 1: status written while the remote is away reaches it once it is back.

The remote is made unreachable for real: its bare repository is moved away and back.  Status
commits that could not be pushed wait in the private checkout; a sync must keep them (rebased
onto whatever the user pushed meanwhile), and the daemon must count "status not on the remote"
as work, so the final status of a pass arrives without a new user commit.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from reconciler.gitops import GitCheckout, GitOpsError
from tests.support.daemon import RemoteAway, start_daemon, stop_daemon
from tests.support.git import USER_ENV, git, remote_head, user_commit, user_push
from tests.support.workspace import chunks_done, migration_yaml, small_vm

pytestmark = pytest.mark.integration


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    git(seed, "checkout", "-q", "-b", "main")
    user_commit(seed, "plans/p.yaml", "kind: Plan\n", "a plan")
    git(seed, "push", "-q", "origin", "main")
    return bare


def _show(remote: Path, path: str) -> str | None:
    proc = subprocess.run(
        ["git", "show", f"main:{path}"], cwd=remote, capture_output=True, text=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def test_a_sync_keeps_unpushed_status_commits_and_they_are_pushed_later(
    remote: Path, tmp_path: Path
) -> None:
    checkout = GitCheckout(str(remote), tmp_path / "work", backoff=0.01, push_attempts=2)
    checkout.sync()
    checkout.write_status({"status/plan/p.yaml": "phase: Running\n"}, "status: running")
    with RemoteAway(remote):
        with pytest.raises(GitOpsError):
            checkout.write_status({"status/plan/p.yaml": "phase: Succeeded\n"}, "status: done")
    assert checkout.status_pending()
    # meanwhile a user pushes (an unrelated file, and one in status/ to make it conflict)
    user = tmp_path / "user"
    git(tmp_path, "clone", "-q", str(remote), str(user))
    user_commit(user, "README.md", "hello\n", "readme")
    user_commit(user, "status/plan/p.yaml", "phase: Edited by hand\n", "a hand edit of status")
    user_push(user)
    user_head = remote_head(remote)

    checkout.sync()  # reads the user's commits, keeps our status commit on top of them
    assert (checkout.path / "README.md").read_text() == "hello\n"
    assert (checkout.path / "status/plan/p.yaml").read_text() == "phase: Succeeded\n"
    assert checkout.status_pending()

    pushed = checkout.flush_status()
    assert pushed == remote_head(remote)
    assert _show(remote, "status/plan/p.yaml") == "phase: Succeeded\n"
    assert git(remote, "merge-base", "--is-ancestor", user_head, pushed) == ""  # nothing dropped
    assert not checkout.status_pending()
    assert checkout.flush_status() is None  # nothing left to push


def test_a_sync_keeps_only_status_commits(remote: Path, tmp_path: Path) -> None:
    """A local commit outside status/ (never ours to push) is the remote's to decide: dropped."""
    checkout = GitCheckout(str(remote), tmp_path / "work", backoff=0.01, push_attempts=1)
    checkout.sync()
    (checkout.path / "plans" / "stray.yaml").write_text("kind: Plan\n")
    git(checkout.path, "add", "plans/stray.yaml")
    git(checkout.path, "commit", "-q", "-m", "stray")
    checkout.sync()
    assert not (checkout.path / "plans" / "stray.yaml").exists()
    assert not checkout.status_pending()
    assert checkout.flush_status() is None
    assert _show(remote, "plans/stray.yaml") is None


def test_the_daemon_pushes_the_final_status_once_the_remote_is_back(workspace_factory) -> None:
    ws = workspace_factory([small_vm("outage", 3, data_mib=24, capacity_mib=64)])
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit(
        {
            ".mtv-gitops.yaml": cfg.replace("verify: true", "verify: true\n  maxMiBps: 2"),
            "migrations/demo-plan-1.yaml": None,
        },
        "slow copies, and no migration yet",
    )
    # the retry wait is short, so the remote's return is noticed soon after
    proc, out = start_daemon(ws, env={"MTV_GITOPS_GIT_RETRY_MAX": "1"})
    away = RemoteAway(ws.remote)
    try:
        out.wait_for(lambda lines: any(x.startswith("pass at ") for x in lines), "an idle pass")
        ws.user_commit(
            {"migrations/demo-plan-1.yaml": migration_yaml("demo-plan-1", "demo-plan")}, "go"
        )
        deadline = time.monotonic() + 240  # a guard against a hang; the wait is for the copy
        while chunks_done(ws) < 1:
            assert time.monotonic() < deadline, "\n".join(out.lines)
            time.sleep(0.02)
        away.__enter__()  # the remote goes away mid-copy and stays away past the pass's end
        out.wait_for(
            lambda lines: any("retrying in" in x for x in lines),
            "the pass's final status write failed",
        )
        migration = ws.state / "checkout" / "status/migration/openshift-mtv/demo-plan-1.yaml"
        assert "Succeeded" in migration.read_text()  # committed here, not pushed
        away.back()
        deadline = time.monotonic() + 120  # a guard against a hang, not a measure of speed
        while "Succeeded" not in (
            ws.remote_file("status/migration/openshift-mtv/demo-plan-1.yaml") or ""
        ):
            assert time.monotonic() < deadline, "status never pushed:\n" + "\n".join(out.lines)
            assert proc.poll() is None, "\n".join(out.lines)
            time.sleep(0.1)
        plan = ws.status("plan", "demo-plan")["status"]
        [vm] = plan["migration"]["vms"]
        assert vm["phase"] == "Completed"
    finally:
        away.back()
        stop_daemon(proc, out)
    user_env = {**os.environ, **USER_ENV}
    log = subprocess.run(
        ["git", "log", "--format=%ae", "main"], cwd=ws.remote, env=user_env,
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert log.count("user@example.com") == 3  # every user commit is there
