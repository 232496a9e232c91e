"""Issue 13 item 9: a pass with nothing to do is cheap, and status commits stay small.

With many plans, a pass whose inputs did not change since a pass that left nothing to do asks
no provider (the test moves the OVA folder away: a pass that looked would see the provider
gone), and a commit to one plan rewrites only that plan's status and the repo's, under a
short subject.
"""

from __future__ import annotations

import pytest

from tests.support.workspace import plan_yaml, small_vm

pytestmark = pytest.mark.integration

PLANS = 40


def _many_plans(ws, vm: str) -> None:
    files = {
        f"plans/extra-{i:03d}.yaml": plan_yaml(f"extra-{i:03d}", [vm], f"extra-{i:03d}")
        for i in range(PLANS)
    }
    ws.user_commit(files, f"{PLANS} more plans, nothing to migrate in them")


def _new_commits(ws, since: str) -> list[str]:
    return [line.split()[0] for line in ws.log(f"{since}..main")]


def _subject(ws, sha: str) -> str:
    import git

    return git.Repo(ws.remote).git.log("-1", "--format=%s", sha)


def test_status_commits_touch_only_what_changed_under_a_short_subject(workspace_factory) -> None:
    ws = workspace_factory([small_vm("scale", 2)])
    _many_plans(ws, "scale")
    ws.reconcile(check=True)
    head = ws.log()[0].split()[0]
    for line in ws.log():
        assert len(line.split(" ", 2)[2]) <= 100, line  # every subject, the first pass's too

    plan = f"plans/extra-{7:03d}.yaml"
    text = (ws.clone / plan).read_text()
    ws.user_commit({plan: text.replace("targetNamespace: extra-007", "targetNamespace: moved")},
                   "one plan moves")  # fmt: skip
    user_head = ws.log()[0].split()[0]
    proc = ws.reconcile(check=True)
    commits = _new_commits(ws, user_head)
    assert len(commits) == 1, proc.stdout
    assert sorted(ws.log_files(commits[0])) == [
        "status/plan/openshift-mtv/extra-007.yaml",
        "status/repo.yaml",
    ]
    assert _subject(ws, commits[0]).startswith("status: plan openshift-mtv/extra-007: ")
    assert head != user_head
    # an object's status names the revision of its own manifest
    assert ws.status("plan", "extra-007")["status"]["observedRevision"] == user_head
    assert ws.status("plan", "extra-008")["status"]["observedRevision"] != user_head


def test_a_pass_with_nothing_to_do_asks_no_provider(workspace_factory) -> None:
    ws = workspace_factory([small_vm("idle", 3)])
    _many_plans(ws, "idle")
    ws.reconcile(check=True)  # migrates demo-plan's VM; the extra plans are ready and idle
    before = ws.log()[0]
    ws.ova.rename(ws.ova.with_name("ova.away"))  # a pass that asked the provider would fail
    try:
        proc = ws.reconcile()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "providers not asked" in proc.stdout
        assert ws.log()[0] == before  # no status commit

        ws.user_commit({"README.md": "notes\n"}, "a README: nothing the reconciler reads")
        user_head = ws.log()[0]
        proc = ws.reconcile()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "providers not asked" in proc.stdout
        assert ws.log()[0] == user_head  # nothing to say about a README
    finally:
        ws.ova.with_name("ova.away").rename(ws.ova)
    provider = ws.status("provider", "ova-files")["status"]
    assert provider["conditions"][-1]["type"] == "Ready"

    # a change the reconciler reads makes a full pass again, which sees the provider
    cfg = (ws.clone / ".mtv-gitops.yaml").read_text()
    ws.user_commit({".mtv-gitops.yaml": cfg + "# a comment\n"}, "config touched")
    proc = ws.reconcile(check=True)
    assert "providers not asked" not in proc.stdout


def test_a_vm_deleted_by_hand_on_the_embedded_target_is_still_noticed(workspace_factory) -> None:
    ws = workspace_factory([small_vm("gone", 6)])
    ws.reconcile(check=True)
    assert "providers not asked" in ws.reconcile(check=True).stdout  # settled
    (ws.cluster / "demo-vms" / "virtualmachines" / "gone.yaml").unlink()
    proc = ws.reconcile(check=True)
    assert "providers not asked" not in proc.stdout
    conds = {c["type"]: c for c in ws.status("plan", "demo-plan")["status"]["conditions"]}
    assert conds["TargetVMMissing"]["items"] == ["demo-vms/gone"]
