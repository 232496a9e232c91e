"""Proposing a warm migration's cutover as a branch the user merges.

The reconciler never cuts over on its own: it pushes ``mtv-gitops/cutover/<ns>/<migration>``
with one commit that sets ``spec.cutover`` in the user's Migration file (a one-line edit, see
:func:`reconciler.manifests.edit.set_cutover`) and says in status which branch to merge.  It
never merges, never force-pushes, and a branch someone else has committed to is theirs: it is
reported, not touched.  Calling :func:`propose_cutover` again with the same time pushes
nothing, so a pass may call it every time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import git
from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from reconciler.gitops._git import GitOpsError
from reconciler.gitops.checkout import GitCheckout
from reconciler.manifests.config import load_config
from reconciler.manifests.edit import EditError, rfc3339, set_cutover
from reconciler.manifests.loader import load_repo
from reconciler.manifests.models import DNS1123_LABEL, DNS1123_SUBDOMAIN, MigrationSpec

__all__ = ["Proposal", "ProposalState", "commit_message", "cutover_branch", "propose_cutover"]

BRANCH_PREFIX = "mtv-gitops/cutover"
_ATTEMPTS = 3


class ProposalState(StrEnum):
    """Where a cutover proposal stands after :func:`propose_cutover`."""

    PROPOSED = "Proposed"  # the branch carries our one-line commit: merge it to cut over
    ALREADY_SET = "AlreadySet"  # the user's file sets spec.cutover: nothing to propose
    HELD = "HeldByOthers"  # the branch has someone else's commits: left exactly as it is
    CANNOT_EDIT = "CannotEdit"  # the file cannot take a one-line edit: the user must fix it


@dataclass(frozen=True)
class Proposal:
    """What was proposed, on which branch, and the sentence status shows the user."""

    state: ProposalState
    branch: str
    path: str  # the Migration's file, relative to the repo root ("" when not found)
    instruction: str  # for status: what to merge, or why nothing was proposed
    when: datetime | None = None  # the time the branch (or the user's file) sets, if known
    commit: str | None = None  # the branch head (PROPOSED, HELD); None when there is no branch
    pushed: bool = False  # True only when this call pushed a new commit
    foreign: tuple[str, ...] = ()  # the commits by others that hold the branch (HELD)


def cutover_branch(namespace: str, migration: str) -> str:
    """The proposal branch of one Migration: one per Migration, so proposals never collide."""
    if not re.match(DNS1123_LABEL, namespace) or len(namespace) > 63:
        raise ValueError(f"not a namespace name: {namespace!r}")
    if not re.match(DNS1123_SUBDOMAIN, migration) or len(migration) > 253:
        raise ValueError(f"not a Migration name: {migration!r}")
    return f"{BRANCH_PREFIX}/{namespace}/{migration}"


def commit_message(namespace: str, migration: str, path: str, when: datetime) -> str:
    """Say what merging does; built from its arguments only (no clock), so it is stable."""
    stamp = rfc3339(when)
    return (
        f"Cut over Migration {namespace}/{migration} at {stamp}\n\n"
        f"Merging this branch sets spec.cutover in {path}: at {stamp} (at once if that time\n"
        "has passed) the warm migration stops its precopy rounds, powers off the source VMs,\n"
        "copies the last changes and starts the VMs on the target.  Change the time before\n"
        "then to reschedule; remove spec.cutover before then to cancel.  mtv-gitops never\n"
        "merges this branch itself.\n"
    )


def propose_cutover(
    checkout: GitCheckout,
    namespace: str,
    migration: str,
    when: datetime,
    *,
    path: str | None = None,
) -> Proposal:
    """Push the one-line proposal that sets ``spec.cutover`` to *when*, unless it is moot.

    *path* is the Migration's file (``Manifest.location.file``); without it the checkout's
    tree is loaded to find it.  The file is read from the remote's branch as fetched now, so
    the proposal never undoes a user's newer edit.  A branch already proposing *when* is
    left as it is (nothing pushed), even when the user's branch has moved on since: its one
    commit still changes one line.  Raises :class:`GitOpsError` when the remote cannot be
    reached or refuses the push (worth retrying); every other outcome is a :class:`Proposal`.
    """
    if when.tzinfo is None:
        raise ValueError("the cutover time must carry a UTC offset")
    when = when.astimezone(UTC).replace(microsecond=0)  # what the file can say
    branch = cutover_branch(namespace, migration)
    with checkout.locked():
        if path is None:
            path = _find_file(checkout, namespace, migration)
            if path is None:
                return Proposal(
                    ProposalState.CANNOT_EDIT,
                    branch,
                    "",
                    f"no Migration {namespace}/{migration} found in the repo: nothing to "
                    f"propose on {branch}",
                )
        return _propose(checkout, namespace, migration, when, path, branch)


def _propose(
    checkout: GitCheckout,
    namespace: str,
    migration: str,
    when: datetime,
    path: str,
    branch: str,
) -> Proposal:
    base = checkout.branch
    stale = False
    for _ in range(_ATTEMPTS):
        base_sha = checkout.fetch_tracked()
        text = _read(checkout, base_sha, path)
        if text is None:
            return _cannot(branch, path, f"{path} is not on {base} (or is not UTF-8 text)")
        try:
            already, set_to = _cutover_in(text, path, namespace, migration)
        except EditError as exc:
            return _cannot(branch, path, str(exc))
        if already:
            shown = rfc3339(set_to) if set_to is not None else "a time"
            return Proposal(
                ProposalState.ALREADY_SET,
                branch,
                path,
                f"spec.cutover is set to {shown} in {path} on {base}: no branch to merge",
                when=set_to,
            )

        look = checkout.proposal_branch(branch, against=base_sha)
        tip = look.tip
        if tip is not None and look.foreign:
            return _held(checkout, branch, path, namespace, migration, tip, look.foreign)
        # An open proposal of ours is edited where it stands (one more one-line commit, no
        # rebase needed); a merged one, or none, starts from the user's branch.
        merged = look.merged
        live = tip is not None and not merged and not stale
        source = (_read(checkout, tip, path) if live and tip is not None else None) or text
        try:
            edited = set_cutover(source, path, namespace, migration, when)
        except EditError as exc:
            return _cannot(branch, path, str(exc))

        message = commit_message(namespace, migration, path, when)
        try:
            if merged and tip is not None and _read(checkout, tip, path) == edited:
                # Merged, then cancelled on main: the old branch says the same, but merging it
                # again would do nothing.  push_branch would call it current; start afresh
                # on the base (a fast-forward: the base holds the old tip).
                sha = checkout.push_commit(branch, base_sha, {path: edited}, message)
            else:
                sha = checkout.push_branch(branch, {path: edited}, message, base=base)
        except GitOpsError:
            # Someone may have pushed to the branch between our look and our push.
            now = checkout.proposal_branch(branch, against=base_sha)
            if now.tip is not None and now.tip != tip and now.foreign:
                return _held(checkout, branch, path, namespace, migration, now.tip, now.foreign)
            raise
        used = checkout.tracked_head()
        if sha == used:
            continue  # the user's branch gained the same cutover meanwhile: look again
        if not live and used != base_sha and _read(checkout, used or base_sha, path) != text:
            # The user's branch moved between our read and push_branch's own fetch and the
            # file changed: the commit we stacked would undo that change.  Put one on top
            # that restores it, so the branch differs from the new base by our one line.
            stale = True
            continue
        return Proposal(
            ProposalState.PROPOSED,
            branch,
            path,
            f"merge branch {branch} to cut over at {rfc3339(when)}",
            when=when,
            commit=sha,
            pushed=sha != tip,
        )
    raise GitOpsError(
        f"the branch {base!r} kept moving while proposing {branch!r}: try again next pass"
    )


def _cannot(branch: str, path: str, why: str) -> Proposal:
    return Proposal(
        ProposalState.CANNOT_EDIT,
        branch,
        path,
        f"cannot propose a cutover on {branch}: {why}",
    )


def _held(
    checkout: GitCheckout,
    branch: str,
    path: str,
    namespace: str,
    migration: str,
    tip: str,
    foreign: tuple[str, ...],
) -> Proposal:
    """Report a branch others committed to: theirs now, so its time is what it says."""
    set_to = None
    text = _read(checkout, tip, path)
    if text is not None:
        try:
            _, set_to = _cutover_in(text, path, namespace, migration)
        except EditError:
            set_to = None
    shas = ", ".join(c[:12] for c in foreign[:5])
    at = f"at {rfc3339(set_to)}" if set_to is not None else f"at the time it sets in {path}"
    return Proposal(
        ProposalState.HELD,
        branch,
        path,
        f"branch {branch} has commits by others ({shas}); mtv-gitops leaves it as it is: "
        f"merge branch {branch} to cut over {at}",
        when=set_to,
        commit=tip,
        foreign=foreign,
    )


def _read(checkout: GitCheckout, commit: str, path: str) -> str | None:
    """The file's exact text at *commit* (line ends kept), or None when it is not there."""
    repo = git.Repo(checkout.path)
    try:
        try:
            blob = repo.commit(commit).tree / path
        except KeyError:
            return None
        try:
            return blob.data_stream.read().decode("utf-8")
        except UnicodeDecodeError:
            return None
    finally:
        repo.close()


def _cutover_in(
    text: str, path: str, namespace: str, migration: str
) -> tuple[bool, datetime | None]:
    """Whether the Migration in *text* sets ``spec.cutover``, and to what (None: unreadable).

    Matches the document the way :func:`set_cutover` does, so the check and the edit agree.
    """
    try:
        docs = list(YAML(typ="rt").load_all(text))
    except Exception as exc:  # noqa: BLE001 - any parse error: the file is the user's to fix
        raise EditError(f"{path}: not valid YAML: {exc}") from exc
    for doc in docs:
        if not isinstance(doc, CommentedMap) or doc.get("kind") != "Migration":
            continue
        meta = doc.get("metadata") or {}
        if not isinstance(meta, dict):
            continue
        if meta.get("name") != migration or (meta.get("namespace") or namespace) != namespace:
            continue
        spec = doc.get("spec")
        if not isinstance(spec, CommentedMap) or spec.get("cutover") is None:
            return False, None
        try:
            return True, MigrationSpec.model_validate(
                {"plan": {"name": "-"}, "cutover": spec["cutover"]}
            ).cutover
        except ValidationError:
            return True, None
    raise EditError(f"{path}: no Migration {namespace}/{migration} in the file")


def _find_file(checkout: GitCheckout, namespace: str, migration: str) -> str | None:
    """The Migration's file in the checkout's tree, as the loader sees it."""
    config, _ = load_config(checkout.path)
    found = load_repo(checkout.path, config).get("Migration", namespace, migration)
    return found.location.file if found is not None else None
