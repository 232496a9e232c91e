"""propose_cutover() against real git: a bare remote, a reviewer's clone, our private clone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.gitops import GitCheckout
from reconciler.gitops.cutover import ProposalState, cutover_branch, propose_cutover
from reconciler.manifests.config import load_config
from reconciler.manifests.loader import load_repo
from tests.support.git import fresh_clone, git, is_ancestor, remote_head, user_commit

pytestmark = pytest.mark.integration

NS = "openshift-mtv"
NAME = "web-warm"
PATH = "migrations/web.yaml"
BRANCH = "mtv-gitops/cutover/openshift-mtv/web-warm"
WHEN = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
API = "forklift.konveyor.io/v1beta1"

MIGRATION = f"""\
# Warm migration of the web tier: cutover after the reviewers agree.
apiVersion: {API}
kind: Migration
metadata:
  name: web-warm   # the first attempt
  namespace: openshift-mtv
spec:
    # four-space indent, kept
    plan:
        name: web    # the plan
        namespace: openshift-mtv
    cancel: [ {{name: old-vm}} ]
"""
OTHER = f"""\
apiVersion: {API}
kind: Migration
metadata: {{name: other, namespace: openshift-mtv}}
spec: {{plan: {{name: other}}}}
"""


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    git(bare, "config", "core.logAllRefUpdates", "always")
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    git(seed, "checkout", "-q", "-b", "main")
    user_commit(seed, PATH, MIGRATION, "add the web migration")
    user_commit(seed, "migrations/other.yaml", OTHER, "add another migration")
    git(seed, "push", "-q", "origin", "main")
    return bare


@pytest.fixture
def reviewer(tmp_path: Path, remote: Path) -> Path:
    return fresh_clone(tmp_path, remote, "reviewer")


@pytest.fixture
def checkout(tmp_path: Path, remote: Path) -> GitCheckout:
    co = GitCheckout(str(remote), tmp_path / "work", backoff=0.02)
    co.sync()
    return co


def branch_head(remote: Path, branch: str = BRANCH) -> str:
    return git(remote, "rev-parse", f"refs/heads/{branch}")


def has_branch(remote: Path, branch: str = BRANCH) -> bool:
    return git(remote, "branch", "--list", branch) != ""


def changed_lines(repo: Path, old: str, new: str) -> list[str]:
    """The lines a tree diff adds or removes, over all files (git's own diff)."""
    out = git(repo, "diff", "-U0", "--no-color", old, new)
    return [
        line
        for line in out.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def assert_fast_forwards_only(remote: Path, branch: str) -> None:
    """Every update the remote logged for *branch* is a fast-forward of the one before."""
    log = remote / "logs" / "refs" / "heads" / branch
    for line in log.read_text().splitlines():
        old, new = line.split()[:2]
        if set(old) != {"0"}:
            assert is_ancestor(remote, old, new), f"non-fast-forward update {old} -> {new}"


def merge_into_main(clone: Path, branch: str = BRANCH) -> str:
    """What a reviewer does: merge the proposal into main and push."""
    git(clone, "pull", "-q", "--no-rebase", "origin", "main")
    git(clone, "fetch", "-q", "origin")
    git(clone, "merge", "-q", "--no-ff", "-m", f"Merge {branch}", f"origin/{branch}")
    git(clone, "push", "-q", "origin", "HEAD:main")
    return git(clone, "rev-parse", "HEAD")


def load_migration(repo: Path):
    config, errors = load_config(repo)
    assert errors == []
    desired = load_repo(repo, config)
    assert desired.errors == []
    return desired.get("Migration", NS, NAME)


def test_the_proposal_is_one_changed_line_on_its_own_branch(checkout, remote):
    base = remote_head(remote)
    got = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    assert got.state is ProposalState.PROPOSED and got.pushed
    assert (got.branch, got.path, got.when) == (BRANCH, PATH, WHEN)
    assert got.commit == branch_head(remote)
    assert got.instruction == f"merge branch {BRANCH} to cut over at 2026-11-26T22:00:00Z"
    # One commit on top of main, exactly one added line in the user's file, nothing else.
    assert git(remote, "rev-parse", f"{got.commit}^") == base
    assert git(remote, "diff", "--name-only", base, got.commit) == PATH
    assert changed_lines(remote, base, got.commit) == ['+    cutover: "2026-11-26T22:00:00Z"']
    assert remote_head(remote) == base  # never merged, main untouched
    # Comments, indentation and key order are the user's.
    text = git(remote, "show", f"{got.commit}:{PATH}") + "\n"
    assert text == MIGRATION.replace(
        "    plan:\n", '    cutover: "2026-11-26T22:00:00Z"\n    plan:\n'
    )
    spec = YAML(typ="rt").load(text)["spec"]
    assert list(spec) == ["cutover", "plan", "cancel"]
    # Authored by the reconciler, with a message that says what merging does.
    assert git(remote, "log", "-1", "--format=%ae", got.commit) == "mtv-gitops@localhost"
    message = git(remote, "log", "-1", "--format=%B", got.commit)
    assert message.startswith(f"Cut over Migration {NS}/{NAME} at 2026-11-26T22:00:00Z\n\n")
    assert f"Merging this branch sets spec.cutover in {PATH}" in message


def test_a_second_proposal_with_the_same_time_pushes_nothing(checkout, remote):
    first = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    log = remote / "logs" / "refs" / "heads" / BRANCH
    updates = log.read_text()
    # The same second, as the file states it: the same proposal.
    again = propose_cutover(checkout, NS, NAME, WHEN + timedelta(microseconds=250), path=PATH)
    assert again.state is ProposalState.PROPOSED and not again.pushed
    assert again.commit == first.commit == branch_head(remote)
    assert again.when == WHEN
    assert again.instruction == first.instruction
    assert log.read_text() == updates  # the remote saw no update at all


def test_merging_the_branch_makes_the_migration_carry_the_cutover(
    checkout, remote, reviewer, tmp_path
):
    assert load_migration(reviewer).spec.cutover is None
    got = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    merged = merge_into_main(reviewer)
    verify = fresh_clone(tmp_path, remote)
    assert git(verify, "rev-parse", "HEAD") == merged
    migration = load_migration(verify)
    assert migration.spec.cutover == WHEN
    assert migration.spec.plan.name == "web" and [v.name for v in migration.spec.cancel] == [
        "old-vm"
    ]
    # Merged: the user's file says it now, so there is nothing left to propose.
    after = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    assert after.state is ProposalState.ALREADY_SET and not after.pushed
    assert after.when == WHEN and after.commit is None
    assert after.instruction == (
        f"spec.cutover is set to 2026-11-26T22:00:00Z in {PATH} on main: no branch to merge"
    )
    assert branch_head(remote) == got.commit


def test_a_reviewers_commit_on_the_branch_is_kept_and_reported(checkout, remote, reviewer):
    ours = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    git(reviewer, "fetch", "-q", "origin")
    git(reviewer, "checkout", "-q", "-b", "review", f"origin/{BRANCH}")
    text = (reviewer / PATH).read_text()
    later = text.replace('"2026-11-26T22:00:00Z"', '"2026-11-27T06:30:00Z"  # after backups')
    theirs = user_commit(reviewer, PATH, later, "review: cut over after the backups")
    git(reviewer, "push", "-q", "origin", f"HEAD:{BRANCH}")

    for when in (WHEN, WHEN + timedelta(hours=1)):  # same time, or a new one: hands off
        held = propose_cutover(checkout, NS, NAME, when, path=PATH)
        assert held.state is ProposalState.HELD and not held.pushed
        assert held.foreign == (theirs,) and held.commit == theirs
        assert held.when == datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
        assert held.instruction == (
            f"branch {BRANCH} has commits by others ({theirs[:12]}); mtv-gitops leaves it as "
            f"it is: merge branch {BRANCH} to cut over at 2026-11-27T06:30:00Z"
        )
        assert branch_head(remote) == theirs
    assert git(remote, "rev-parse", f"{theirs}^") == ours.commit  # nothing dropped
    assert_fast_forwards_only(remote, BRANCH)
    # Their version is what merging delivers.
    git(reviewer, "checkout", "-q", "main")
    merge_into_main(reviewer)
    assert load_migration(reviewer).spec.cutover == datetime(2026, 11, 27, 6, 30, tzinfo=UTC)


def test_a_migration_that_already_sets_cutover_gets_no_proposal(checkout, remote, reviewer):
    text = MIGRATION.replace("    plan:\n", "    cutover: 2026-12-01T08:00:00+01:00\n    plan:\n")
    user_commit(reviewer, PATH, text, "cut over on Monday")
    git(reviewer, "push", "-q", "origin", "main")
    got = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    assert got.state is ProposalState.ALREADY_SET and not got.pushed
    assert got.when == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert not has_branch(remote)


def test_the_file_is_found_by_the_loader_when_no_path_is_given(checkout, remote):
    got = propose_cutover(checkout, NS, NAME, WHEN)
    assert got.state is ProposalState.PROPOSED and got.path == PATH
    missing = propose_cutover(checkout, NS, "nope", WHEN)
    assert missing.state is ProposalState.CANNOT_EDIT
    assert missing.instruction.startswith(f"no Migration {NS}/nope found in the repo")
    assert not has_branch(remote, cutover_branch(NS, "nope"))


def test_a_one_line_flow_spec_is_proposed_on_that_line(checkout, remote):
    base = remote_head(remote)
    got = propose_cutover(checkout, NS, "other", WHEN, path="migrations/other.yaml")
    assert got.state is ProposalState.PROPOSED
    assert got.branch == "mtv-gitops/cutover/openshift-mtv/other"
    assert changed_lines(remote, base, got.commit) == [
        "-spec: {plan: {name: other}}",
        '+spec: {cutover: "2026-11-26T22:00:00Z", plan: {name: other}}',
    ]


def test_a_file_that_cannot_take_a_one_line_edit_is_reported(checkout, remote, reviewer):
    multi = OTHER.replace(
        "spec: {plan: {name: other}}", "spec: {plan: {name: other},\n  cancel: []}"
    )
    user_commit(reviewer, "migrations/other.yaml", multi, "multi-line flow spec")
    git(reviewer, "push", "-q", "origin", "main")
    got = propose_cutover(checkout, NS, "other", WHEN, path="migrations/other.yaml")
    assert got.state is ProposalState.CANNOT_EDIT and not got.pushed
    assert "write it in block style" in got.instruction
    assert not has_branch(remote, "mtv-gitops/cutover/openshift-mtv/other")


def test_a_user_edit_on_main_leaves_the_open_proposal_one_line(checkout, remote, reviewer):
    ours = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    edited = MIGRATION.replace(
        "    cancel: [ {name: old-vm} ]\n", "    cancel: [ {name: old-vm}, {name: db} ]\n"
    )
    user_commit(reviewer, PATH, edited, "also skip db")
    git(reviewer, "push", "-q", "origin", "main")
    # Same time: the open branch still proposes it; nothing pushed, nothing of the user's undone.
    same = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    assert same.state is ProposalState.PROPOSED and not same.pushed
    assert same.commit == ours.commit
    # A new time: one more commit changing that one line, still one line from where it forked.
    moved = propose_cutover(checkout, NS, NAME, WHEN + timedelta(hours=3), path=PATH)
    assert moved.pushed and git(remote, "rev-parse", f"{moved.commit}^") == ours.commit
    assert changed_lines(remote, ours.commit, moved.commit) == [
        '-    cutover: "2026-11-26T22:00:00Z"',
        '+    cutover: "2026-11-27T01:00:00Z"',
    ]
    fork = git(remote, "merge-base", "main", moved.commit)
    assert changed_lines(remote, fork, moved.commit) == ['+    cutover: "2026-11-27T01:00:00Z"']
    assert_fast_forwards_only(remote, BRANCH)
    # Merging keeps both the user's edit and the cutover.
    merge_into_main(reviewer)
    migration = load_migration(reviewer)
    assert migration.spec.cutover == WHEN + timedelta(hours=3)
    assert [v.name for v in migration.spec.cancel] == ["old-vm", "db"]


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=5)], ids=["same", "new"])
def test_after_a_cancel_the_next_proposal_starts_from_main(checkout, remote, reviewer, later):
    ours = propose_cutover(checkout, NS, NAME, WHEN, path=PATH)
    merge_into_main(reviewer)
    (reviewer / PATH).write_text(MIGRATION)  # the user removes spec.cutover: cancel
    git(reviewer, "commit", "-q", "-am", "not yet")
    git(reviewer, "push", "-q", "origin", "HEAD:main")
    main = remote_head(remote)
    again = propose_cutover(checkout, NS, NAME, WHEN + later, path=PATH)
    assert again.state is ProposalState.PROPOSED and again.pushed
    assert git(remote, "rev-parse", f"{again.commit}^") == main
    stamp = (WHEN + later).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert changed_lines(remote, main, again.commit) == [f'+    cutover: "{stamp}"']
    assert is_ancestor(remote, ours.commit, again.commit)  # a fast-forward of the old branch
    assert_fast_forwards_only(remote, BRANCH)
    # Merging the fresh proposal schedules the cutover again.
    merge_into_main(reviewer)
    assert load_migration(reviewer).spec.cutover == WHEN + later


class RacingCheckout(GitCheckout):
    """A checkout whose fetches of main let a user push first, at a chosen moment."""

    def __init__(self, *args, race_on: int, race, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fetches = 0
        self.race_on = race_on
        self.race = race
        fetch = self.git.fetch  # every fetch of the checkout goes through its git runner

        def racing_fetch(branch: str) -> None:
            if branch == "main":
                self.fetches += 1
                if self.fetches == self.race_on:
                    self.race()
            fetch(branch)

        self.git.fetch = racing_fetch


def test_a_user_push_between_our_read_and_our_push_is_not_undone(remote, reviewer, tmp_path):
    edited = MIGRATION.replace("  # the first attempt", "  # the second attempt")

    def user_pushes() -> None:
        user_commit(reviewer, PATH, edited, "rename the attempt")
        git(reviewer, "push", "-q", "origin", "main")

    co = RacingCheckout(str(remote), tmp_path / "work", race_on=3, race=user_pushes)
    co.sync()  # fetch 1; propose_cutover reads main at fetch 2, push_branch fetches at 3
    got = propose_cutover(co, NS, NAME, WHEN, path=PATH)
    assert got.state is ProposalState.PROPOSED and got.pushed
    main = remote_head(remote)
    assert co.fetches == 5  # the race happened, and the proposal was made again on top
    assert git(remote, "show", f"{main}:{PATH}") + "\n" == edited
    assert git(remote, "rev-list", "--count", f"main..{got.commit}") == "2"
    assert changed_lines(remote, main, got.commit) == ['+    cutover: "2026-11-26T22:00:00Z"']
    assert_fast_forwards_only(remote, BRANCH)
    merge_into_main(reviewer)
    assert (reviewer / PATH).read_text() == edited.replace(
        "    plan:\n", '    cutover: "2026-11-26T22:00:00Z"\n    plan:\n'
    )


def test_branch_names_are_per_migration_and_checked():
    assert cutover_branch("ns", "m.1") == "mtv-gitops/cutover/ns/m.1"
    for ns, name in (("NS", "m"), ("ns", "../x"), ("", "m"), ("ns", "a b")):
        with pytest.raises(ValueError):
            cutover_branch(ns, name)


def test_a_reviewer_push_during_our_push_is_kept_and_reported(remote, reviewer, tmp_path):
    def reviewer_pushes() -> None:
        git(reviewer, "fetch", "-q", "origin")
        git(reviewer, "checkout", "-q", "-b", "review", f"origin/{BRANCH}")
        text = (reviewer / PATH).read_text()
        user_commit(reviewer, PATH, text + "# looks good\n", "review: ok")
        git(reviewer, "push", "-q", "origin", f"HEAD:{BRANCH}")

    # fetch 1: sync; 2, 3: the first proposal; 4: our look; 5: push_branch's own look.
    co = RacingCheckout(str(remote), tmp_path / "work", race_on=5, race=reviewer_pushes)
    co.sync()
    ours = propose_cutover(co, NS, NAME, WHEN, path=PATH)
    held = propose_cutover(co, NS, NAME, WHEN + timedelta(hours=1), path=PATH)
    theirs = git(reviewer, "rev-parse", "HEAD")
    assert co.fetches == 5  # the reviewer pushed while push_branch was looking
    assert held.state is ProposalState.HELD and not held.pushed
    assert held.foreign == (theirs,) and held.when == WHEN
    assert branch_head(remote) == theirs and git(remote, "rev-parse", f"{theirs}^") == ours.commit
    assert_fast_forwards_only(remote, BRANCH)
