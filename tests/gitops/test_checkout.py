"""GitCheckout against real git: a bare remote on disk, a user's clone, and our private clone."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from reconciler.gitops import GitCheckout, GitOpsError, RemoteHead
from tests.support.git import fresh_clone, git, is_ancestor, remote_head, user_commit, user_push

pytestmark = pytest.mark.integration


SEED = {
    "providers/vsphere.yaml": "kind: Provider\nmetadata:\n  name: vsphere\n",
    "plans/plan1.yaml": "kind: Plan\nmetadata:\n  name: plan1\n",
    "migrations/m1.yaml": "kind: Migration\nmetadata:\n  name: m1  # keep me\n",
}


def assert_no_forced_update(remote: Path) -> None:
    """Every update in the remote's reflog is a fast-forward of the one before."""
    lines = (remote / "logs" / "refs" / "heads" / "main").read_text().splitlines()
    for line in lines:
        old, new = line.split()[:2]
        if set(old) != {"0"}:
            assert is_ancestor(remote, old, new), f"non-fast-forward update {old} -> {new}"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(bare, "config", "receive.denyNonFastForwards", "true")
    git(bare, "config", "core.logAllRefUpdates", "always")
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    git(seed, "checkout", "-q", "-b", "main")
    for path, content in SEED.items():
        user_commit(seed, path, content, f"add {path}")
    git(seed, "push", "-q", "origin", "main")
    return bare


@pytest.fixture
def user(tmp_path: Path, remote: Path) -> Path:
    clone = tmp_path / "user"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    return clone


@pytest.fixture
def checkout(tmp_path: Path, user: Path) -> GitCheckout:
    # Handed the user's clone, we must talk to its origin (the bare remote).
    return GitCheckout(str(user), tmp_path / "work", backoff=0.02)


def test_sync_returns_remote_head_and_uses_users_origin(checkout, remote, user):
    head = checkout.sync()
    assert head == remote_head(remote)
    assert checkout.remote == str(remote.resolve())
    assert checkout.branch == "main"
    assert (checkout.path / "plans" / "plan1.yaml").read_text() == SEED["plans/plan1.yaml"]
    # A second sync fetches, and a private scribble in the checkout is wiped.
    (checkout.path / "plans" / "plan1.yaml").write_text("garbage")
    new = user_commit(user, "plans/plan2.yaml", "kind: Plan\n", "plan2")
    git(user, "push", "-q", "origin", "main")
    assert checkout.sync() == new
    assert (checkout.path / "plans" / "plan1.yaml").read_text() == SEED["plans/plan1.yaml"]
    assert RemoteHead.poll(str(user), "main") == new
    assert RemoteHead.poll(str(remote), "main") == new


def test_write_status_commits_and_pushes_only_status(checkout, remote, tmp_path):
    base = checkout.sync()
    sha = checkout.write_status(
        {"status/plan/ns/plan1.yaml": "phase: Running\n"}, "status: plan ns/plan1 Running"
    )
    assert sha is not None and sha == remote_head(remote) == checkout.last_pushed
    assert checkout.is_own_commit(sha)
    assert not checkout.is_own_commit(base)
    verify = fresh_clone(tmp_path, remote)
    assert (verify / "status/plan/ns/plan1.yaml").read_text() == "phase: Running\n"
    assert git(verify, "diff", "--name-only", base, sha).splitlines() == [
        "status/plan/ns/plan1.yaml"
    ]
    assert git(verify, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", sha).strip() == (
        "mtv-gitops <mtv-gitops@localhost>|mtv-gitops <mtv-gitops@localhost>|"
        "status: plan ns/plan1 Running"
    )
    # Identical content: no commit, nothing pushed.
    assert checkout.write_status({"status/plan/ns/plan1.yaml": "phase: Running\n"}, "again") is None
    assert remote_head(remote) == sha
    # None deletes (and deleting something absent is a no-op).
    gone = checkout.write_status(
        {"status/plan/ns/plan1.yaml": None, "status/never.yaml": None}, "status: drop plan1"
    )
    assert gone == remote_head(remote)
    assert git(verify, "pull", "-q") == ""
    assert not (verify / "status/plan/ns/plan1.yaml").exists()
    assert checkout.write_status({"status/never.yaml": None}, "nothing") is None
    assert_no_forced_update(remote)


@pytest.mark.parametrize(
    "path", ["plans/plan1.yaml", "status", "../status/x.yaml", "/status/x.yaml", "status/../x"]
)
def test_write_outside_status_refused(checkout, remote, path):
    checkout.sync()
    before = remote_head(remote)
    with pytest.raises(ValueError):
        checkout.write_status({path: "x"}, "sneaky")
    assert remote_head(remote) == before


def test_user_push_between_sync_and_write_is_kept(checkout, remote, user, tmp_path):
    checkout.sync()
    user_sha = user_commit(user, "plans/plan2.yaml", "kind: Plan\n", "user: plan2")
    git(user, "push", "-q", "origin", "main")
    sha = checkout.write_status({"status/plan/ns/plan1.yaml": "phase: Ready\n"}, "status: ready")
    head = remote_head(remote)
    assert sha == head
    assert git(remote, "rev-parse", f"{head}^") == user_sha  # user commit unchanged, parent
    assert is_ancestor(remote, user_sha, head)
    assert git(remote, "rev-list", "--merges", head) == ""
    verify = fresh_clone(tmp_path, remote)
    assert (verify / "plans/plan2.yaml").exists()
    assert (verify / "status/plan/ns/plan1.yaml").read_text() == "phase: Ready\n"
    assert_no_forced_update(remote)


def test_concurrent_user_pushes_and_status_writes_all_survive(remote, user, tmp_path):
    # Each user push can reject at most one of our push attempts (a rejection needs the remote
    # to move between our fetch and our push), so 11 attempts always suffice against 10 user
    # pushes, however the two threads are scheduled; the user's 200 tries bound it the same way.
    checkout = GitCheckout(str(user), tmp_path / "work", backoff=0.02, push_attempts=11)
    checkout.sync()
    pushed_status: list[str] = []
    pushed_user: list[str] = []
    errors: list[BaseException] = []

    def reconciler() -> None:
        try:
            for i in range(20):
                sha = checkout.write_status(
                    {"status/plan/ns/plan1.yaml": f"round: {i}\n"}, f"status: round {i}"
                )
                assert sha is not None
                pushed_status.append(sha)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def human() -> None:
        try:
            for i in range(10):
                user_commit(user, f"plans/p{i}.yaml", f"kind: Plan\nn: {i}\n", f"user: p{i}")
                user_push(user)
                pushed_user.append(git(user, "rev-parse", "HEAD"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reconciler), threading.Thread(target=human)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(pushed_status) == 20 and len(pushed_user) == 10
    head = remote_head(remote)
    for sha in pushed_status + pushed_user:
        assert is_ancestor(remote, sha, head), sha
    assert git(remote, "rev-list", "--merges", head) == ""
    verify = fresh_clone(tmp_path, remote)
    for i in range(10):
        assert (verify / f"plans/p{i}.yaml").read_text() == f"kind: Plan\nn: {i}\n"
    assert (verify / "status/plan/ns/plan1.yaml").read_text() == "round: 19\n"
    assert_no_forced_update(remote)


def test_two_reconcilers_writing_the_same_status_file(remote, user, tmp_path):
    a = GitCheckout(str(remote), tmp_path / "a", author_email="a@mtv", backoff=0.01)
    b = GitCheckout(str(remote), tmp_path / "b", author_email="b@mtv", backoff=0.01)
    a.sync()
    b.sync()
    sha_a = a.write_status({"status/x.yaml": "by: a\n"}, "status: a")
    sha_b = b.write_status({"status/x.yaml": "by: b\n", "status/y.yaml": "y\n"}, "status: b")
    head = remote_head(remote)
    assert sha_b == head and is_ancestor(remote, sha_a, head)
    verify = fresh_clone(tmp_path, remote)
    assert (verify / "status/x.yaml").read_text() == "by: b\n"
    assert (verify / "status/y.yaml").read_text() == "y\n"
    assert_no_forced_update(remote)


def test_needs_pass_ignores_status_only_commits(checkout, remote, user):
    seen = checkout.sync()
    status_sha = checkout.write_status({"status/a.yaml": "a\n"}, "status: a")
    assert status_sha is not None
    assert not checkout.needs_pass(seen, checkout.sync())
    assert not checkout.needs_pass(seen, seen)
    # Someone else's status-only commit does not trigger work either.
    git(user, "pull", "-q")
    user_commit(user, "status/b.yaml", "b\n", "other reconciler status")
    git(user, "push", "-q", "origin", "main")
    after_status = checkout.sync()
    assert not checkout.needs_pass(seen, after_status)
    assert checkout.changed_paths(seen, after_status) == ["status/a.yaml", "status/b.yaml"]
    user_commit(user, "plans/plan1.yaml", "kind: Plan\nchanged: true\n", "edit plan")
    git(user, "push", "-q", "origin", "main")
    new = checkout.sync()
    assert checkout.needs_pass(seen, new)
    assert checkout.needs_pass(after_status, new)
    assert checkout.needs_pass(None, new)
    assert checkout.needs_pass("0" * 40, new)  # unknown old: look at everything


def test_user_commit_hidden_under_rebased_status_still_needs_pass(checkout, user):
    seen = checkout.sync()
    user_commit(user, "plans/plan9.yaml", "kind: Plan\n", "user: plan9")
    git(user, "push", "-q", "origin", "main")
    pushed = checkout.write_status({"status/a.yaml": "a\n"}, "status: a")
    assert pushed == checkout.sync()
    assert checkout.needs_pass(seen, pushed)


def test_unreachable_remote_error_hides_password(tmp_path):
    url = "https://user:secret@127.0.0.1:9/x.git"
    co = GitCheckout(url, tmp_path / "work", branch="main", timeout=20)
    with pytest.raises(GitOpsError) as info:
        co.sync()
    text = f"{info.value!s} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"
    assert "secret" not in text
    assert "127.0.0.1:9" in text
    assert "secret" not in repr(co)
    with pytest.raises(GitOpsError) as info:
        RemoteHead.poll(url, "main", timeout=20)
    assert "secret" not in str(info.value)
    with pytest.raises(GitOpsError) as info:  # branch not given: asking for HEAD fails too
        GitCheckout(url, tmp_path / "w2", timeout=20).sync()
    assert "secret" not in str(info.value)


def test_missing_branch_is_a_clear_error(remote, tmp_path):
    co = GitCheckout(str(remote), tmp_path / "work", branch="nope")
    with pytest.raises(GitOpsError, match="nope"):
        co.sync()


def test_clone_without_origin_is_its_own_remote(tmp_path):
    lonely = tmp_path / "lonely"
    git(tmp_path, "init", "-q", "-b", "trunk", str(lonely))
    user_commit(lonely, "plans/p.yaml", "kind: Plan\n", "first")
    co = GitCheckout(str(lonely), tmp_path / "work")
    assert co.remote == str(lonely.resolve())
    assert co.sync() == git(lonely, "rev-parse", "HEAD")
    assert co.branch == "trunk"


def test_push_branch_proposes_one_commit(checkout, remote, tmp_path):
    base = checkout.sync()
    branch = "mtv-gitops/cutover/ns/m1"
    new_text = "kind: Migration\nmetadata:\n  name: m1  # keep me\nspec:\n  cutover: '2024-01-01'\n"
    files = {"migrations/m1.yaml": new_text}
    sha = checkout.push_branch(branch, files, "cutover: propose ns/m1")
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == sha
    assert git(remote, "rev-parse", f"{sha}^") == base
    assert git(remote, "diff", "--name-only", base, sha) == "migrations/m1.yaml"
    assert git(remote, "show", f"{sha}:migrations/m1.yaml") + "\n" == new_text
    assert remote_head(remote) == base  # the user's branch is untouched
    assert git(remote, "log", "-1", "--format=%ae", sha) == "mtv-gitops@localhost"
    # Same contents again: nothing new.
    assert checkout.push_branch(branch, files, "cutover: propose ns/m1") == sha
    # Different contents on our own branch: a fast-forward commit on top.
    newer = checkout.push_branch(branch, {"migrations/m1.yaml": new_text + "# v2\n"}, "again")
    assert git(remote, "rev-parse", f"{newer}^") == sha
    # A branch carrying someone else's commit is left alone.
    verify = fresh_clone(tmp_path, remote)
    git(verify, "checkout", "-q", branch)
    theirs = user_commit(verify, "migrations/m1.yaml", "edited by reviewer\n", "review edit")
    git(verify, "push", "-q", "origin", branch)
    with pytest.raises(GitOpsError, match="not made by"):
        checkout.push_branch(branch, files, "cutover: propose ns/m1")
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == theirs


def test_on_pushed_callback_records_revision(remote, tmp_path):
    seen: list[str] = []
    co = GitCheckout(str(remote), tmp_path / "work", on_pushed=seen.append)
    co.sync()
    sha = co.write_status({"status/a.yaml": "a\n"}, "status: a")
    assert seen == [sha] and co.last_pushed == sha


def test_push_branch_after_merge_and_when_base_already_agrees(checkout, remote, user):
    base = checkout.sync()
    branch = "mtv-gitops/cutover/ns/m2"
    text = "kind: Migration\nspec:\n  cutover: now\n"
    sha = checkout.push_branch(branch, {"migrations/m2.yaml": text}, "cutover: propose ns/m2")
    # The reviewer merges the proposal; proposing the same again changes nothing.
    git(user, "pull", "-q")
    git(user, "merge", "-q", "--no-ff", "-m", "merge cutover", f"origin/{branch}")
    git(user, "push", "-q", "origin", "main")
    merged = checkout.sync()
    assert checkout.needs_pass(base, merged)
    assert checkout.push_branch(branch, {"migrations/m2.yaml": text}, "again") == sha
    # A new proposal on the merged branch starts from the new base, as a fast-forward.
    later = checkout.push_branch(branch, {"migrations/m2.yaml": text + "# v2\n"}, "v2")
    assert git(remote, "rev-parse", f"{later}^") == merged
    # Nothing to propose when the base already has the contents and no branch exists.
    same = {"plans/plan1.yaml": SEED["plans/plan1.yaml"]}
    assert checkout.push_branch("mtv-gitops/cutover/ns/x", same, "noop") == merged
    assert git(remote, "branch", "--list", "mtv-gitops/cutover/ns/x") == ""


def test_refused_push_raises_and_is_pushed_later(checkout, remote):
    checkout.sync()
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'maintenance window' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = remote_head(remote)
    with pytest.raises(GitOpsError, match="maintenance window"):
        checkout.write_status({"status/a.yaml": "a\n"}, "status: a")
    assert remote_head(remote) == before
    hook.unlink()
    # Same content again: nothing new to commit, but the waiting commit is pushed now.
    sha = checkout.write_status({"status/a.yaml": "a\n"}, "status: a")
    assert sha == remote_head(remote) != before


def test_status_symlink_is_not_followed(checkout, user, remote):
    (user / "status").symlink_to("plans")
    git(user, "add", "status")
    git(user, "commit", "-q", "-m", "sneaky symlink")
    git(user, "push", "-q", "origin", "main")
    checkout.sync()
    with pytest.raises(GitOpsError, match="symlink"):
        checkout.write_status({"status/plan1.yaml": "x"}, "status: x")
    assert (checkout.path / "plans/plan1.yaml").read_text() == SEED["plans/plan1.yaml"]


def test_proposal_branch_says_how_a_branch_stands(checkout, remote, user, tmp_path):
    branch = "mtv-gitops/cutover/ns/m3"
    with checkout.locked():  # clones on first use
        assert (checkout.path / ".git").exists()
        base = checkout.fetch_tracked()
    none = checkout.proposal_branch(branch)
    assert (none.name, none.base, none.tip, none.merged, none.foreign) == (
        branch,
        base,
        None,
        False,
        (),
    )
    ours = checkout.push_branch(branch, {"migrations/m3.yaml": "kind: Migration\n"}, "propose")
    look = checkout.proposal_branch(branch, against=base)
    assert (look.tip, look.merged, look.foreign) == (ours, False, ())
    # A reviewer's commit on the branch is reported, newest first, and left in place.
    verify = fresh_clone(tmp_path, remote)
    git(verify, "checkout", "-q", branch)
    theirs = user_commit(verify, "migrations/m3.yaml", "edited by reviewer\n", "review edit")
    git(verify, "push", "-q", "origin", branch)
    held = checkout.proposal_branch(branch)
    assert (held.tip, held.foreign) == (theirs, (theirs,))
    # Once merged into the tracked branch, the branch is merged and holds nothing foreign.
    git(user, "pull", "-q")
    git(user, "merge", "-q", "--no-ff", "-m", "merge cutover", f"origin/{branch}")
    git(user, "push", "-q", "origin", "main")
    merged = checkout.proposal_branch(branch)
    assert merged.base == remote_head(remote) == checkout.tracked_head()
    assert (merged.tip, merged.merged, merged.foreign) == (theirs, True, ())


def test_push_commit_builds_on_the_given_parent_and_never_on_the_tracked_branch(checkout, remote):
    base = checkout.sync()
    branch = "mtv-gitops/cutover/ns/m4"
    files = {"migrations/m4.yaml": "kind: Migration\n"}
    first = checkout.push_commit(branch, base, files, "propose")
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == first
    assert git(remote, "rev-parse", f"{first}^") == base
    assert checkout.proposal_branch(branch).tip == first  # the tracking ref says so too
    # The same contents again still make a commit: the caller chose to push one.
    second = checkout.push_commit(branch, first, files, "again")
    assert second != first and git(remote, "rev-parse", f"{second}^") == first
    # Not a fast-forward of the branch: refused, never forced.
    with pytest.raises(GitOpsError, match="refused"):
        checkout.push_commit(branch, base, {"migrations/m4.yaml": "other\n"}, "rewind")
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == second
    with pytest.raises(ValueError, match="tracked branch"):
        checkout.push_commit("main", base, files, "onto main")
    assert remote_head(remote) == base
