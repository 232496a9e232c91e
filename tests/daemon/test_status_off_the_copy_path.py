"""Status is written off the copy path: a remote whose pushes hang or are refused delays
status, never a disk copy (a real bare remote whose pre-receive hook the test holds)."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

import git
import pytest

from reconciler.daemon.reconcile import PassResult, Reconciler, Settings
from reconciler.progress.events import Event, Kind, Recorder
from reconciler.transfer.digest import disk_digest_of_file
from tests.support.workspace import Workspace, make_workspace, small_vm

pytestmark = pytest.mark.integration
GUARD = 120.0  # seconds: only against a hang, never a measure of speed

# Pushes wait in the hook until the test creates "release", and are refused until it creates
# "accept"; "entered" says a push has reached the remote.
HOOK = """#!/bin/sh
touch "{gate}/entered"
while [ ! -e "{gate}/release" ]; do sleep 0.02; done
[ -e "{gate}/accept" ] || {{ echo "the remote is closed for the test" >&2; exit 1; }}
exit 0
"""


def _gate(ws: Workspace, gate: Path) -> None:
    gate.mkdir()
    hook = ws.remote / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(gate=gate))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def _status_commits(ws: Workspace) -> list[str]:
    return [line for line in ws.log() if " status:" in line]


def _succeeded(event: Event) -> bool:
    return event.kind is Kind.VM and event.outcome == "Succeeded"


def _run_pass_in_thread(
    rec: Reconciler,
) -> tuple[threading.Thread, list[PassResult | BaseException]]:
    outcome: list[PassResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(rec.run_pass())
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="pass")
    thread.start()
    return thread, outcome


def test_a_copy_completes_while_the_status_push_hangs(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, [small_vm("held", 71, data_mib=8)])
    gate = tmp_path / "gate"
    _gate(ws, gate)
    rec = Reconciler(Settings(source=str(ws.clone), state_dir=ws.state, cluster=ws.cluster))
    seen = Recorder()
    rec.events.subscribe(seen)
    push_hangs = threading.Event()

    def hold_the_copy_until_a_push_hangs(event: Event) -> None:
        # the copy starts only once a status push has reached the remote and hangs there
        if event.kind is Kind.STEP and event.phase == "CopyDisks" and event.outcome == "Running":
            deadline = time.monotonic() + GUARD
            while not (gate / "entered").exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the hook's file: a peer's signal, not a guess
            if (gate / "entered").exists():
                push_hangs.set()

    rec.events.subscribe(hold_the_copy_until_a_push_hangs)
    thread, outcome = _run_pass_in_thread(rec)
    try:
        done = seen.wait_for(_succeeded, GUARD)
        assert push_hangs.is_set()
        # the disk was copied whole, the VM created, and not one status commit got through
        assert thread.is_alive() and not (gate / "release").exists()
        assert _status_commits(ws) == []
        copied = ws.cluster / "demo-vms" / "disks" / "held-disk-0.img"
        assert disk_digest_of_file(copied) == ws.ovas["held"].disks[0].digest
        steps = [e for e in seen.events if e.kind is Kind.STEP and e.vm_id == done.vm_id]
        assert ("CopyDisks", "Completed") in [(e.phase, e.outcome) for e in steps]
        assert [e for e in seen.events if e.kind is Kind.DISK]  # progress was told, too
    finally:
        (gate / "accept").touch()
        (gate / "release").touch()  # the remote is reachable again
        thread.join(GUARD)
        rec.close()
    assert not thread.is_alive()
    [result] = outcome
    assert isinstance(result, PassResult), result
    assert result.status_commits >= 1 and _status_commits(ws)
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed"


def test_a_refused_push_is_tried_again_and_status_lands_when_the_remote_takes_it(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path, [small_vm("refused", 72, data_mib=8)])
    gate = tmp_path / "gate"
    _gate(ws, gate)
    (gate / "release").touch()  # pushes are answered at once: refused
    rec = Reconciler(Settings(source=str(ws.clone), state_dir=ws.state, cluster=ws.cluster))
    seen = Recorder()
    rec.events.subscribe(seen)

    def hold_the_copy_until_a_push_was_refused(event: Event) -> None:
        # however fast the copy, it starts only once a status push has reached the remote
        if event.kind is Kind.STEP and event.phase == "CopyDisks" and event.outcome == "Running":
            deadline = time.monotonic() + GUARD
            while not (gate / "entered").exists() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the hook's file: a peer's signal, not a guess

    def open_the_remote_once_the_vm_is_done(event: Event) -> None:
        if _succeeded(event):
            assert (gate / "entered").exists()  # pushes were tried, and refused ...
            assert _status_commits(ws) == []  # ... while the VM ran to its end
            (gate / "accept").touch()

    rec.events.subscribe(hold_the_copy_until_a_push_was_refused)
    rec.events.subscribe(open_the_remote_once_the_vm_is_done)
    try:
        result = rec.run_pass()
    finally:
        rec.close()
    assert seen.wait_for(_succeeded, 0)
    assert result.failed_vms == 0
    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed"
    copied = ws.cluster / "demo-vms" / "disks" / "refused-disk-0.img"
    assert disk_digest_of_file(copied) == ws.ovas["refused"].disks[0].digest
    # nothing of the user's was lost, nothing forced: the history is linear
    assert git.Repo(ws.remote).git.rev_list("--merges", "main") == ""
