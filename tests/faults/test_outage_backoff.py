"""Issue 13 item 3: a daemon started while the remote is away backs off for real.

The remote is really unreachable (its bare repository moved away).  Every git process the
daemon starts goes through a shim on its PATH that notes the time and the command before it
runs the real git, so the test reads what the daemon did from its own records: the waits it
announced ("retrying in N s") and the git processes it started, never the test's clock.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from itertools import pairwise
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from reconciler.daemon.loop import retry_limits
from tests.support.daemon import RemoteAway, start_daemon, stop_daemon
from tests.support.workspace import small_vm, wait_until

pytestmark = pytest.mark.integration

RETRY = re.compile(r"retrying in (\d+(?:\.\d+)?)s")


def _git_shim(root: Path) -> tuple[dict[str, str], Path]:
    """A ``git`` first on PATH that logs "<epoch seconds> <args>" and runs the real one."""
    real = shutil.which("git")
    assert real is not None
    folder = root / "shim"
    folder.mkdir()
    log = root / "git-calls.log"
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{folder}:{os.environ['PATH']}"}, log


def _calls(log: Path) -> list[tuple[float, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        stamp, _, args = line.partition(" ")
        out.append((float(stamp), args))
    return out


def test_git_retry_waits_are_bounded_by_the_poll_interval() -> None:
    first, longest = retry_limits(30)
    assert (first, longest) == (1.0, 30.0)
    assert retry_limits(0.5) == (0.5, 0.5)


def test_a_daemon_started_while_the_remote_is_away_backs_off(workspace_factory) -> None:
    ws = workspace_factory([small_vm("away", 4)])
    path_env, calls = _git_shim(ws.root)
    env = {**path_env, "MTV_GITOPS_GIT_RETRY_FIRST": "0.2", "MTV_GITOPS_GIT_RETRY_MAX": "1.6"}
    with RemoteAway(ws.remote):
        proc, out = start_daemon(ws, interval=3600, env=env)
        try:
            out.wait_for(lambda lines: sum(bool(RETRY.search(x)) for x in lines) >= 6, "retries")
        finally:
            stop_daemon(proc, out)
    waits = [float(m.group(1)) for x in out.lines if (m := RETRY.search(x))]
    assert waits[:6] == [0.2, 0.4, 0.8, 1.6, 1.6, 1.6], out.lines  # grows, capped
    attempts = [t for t, args in _calls(calls) if " ls-remote " in f" {args} "]
    # each attempt asks the remote once, and waits at least what it announced before the next
    assert len(attempts) == len(waits) or len(attempts) == len(waits) + 1, out.lines
    for (before, after), wait in zip(pairwise(attempts), waits, strict=False):
        assert after - before >= wait - 0.05, (attempts, waits)
    assert len(_calls(calls)) <= 3 * len(attempts)  # no storm of other git commands either
    assert not any("pass at" in x for x in out.lines)


def test_a_push_to_the_watched_clone_wakes_a_backing_off_daemon(workspace_factory) -> None:
    ws = workspace_factory([small_vm("wake", 5)])
    ws.user_commit({"migrations/demo-plan-1.yaml": None}, "no migration: a quick pass")
    env = {"MTV_GITOPS_GIT_RETRY_FIRST": "600", "MTV_GITOPS_GIT_RETRY_MAX": "600"}
    away = RemoteAway(ws.remote).__enter__()
    proc, out = start_daemon(ws, interval=3600, env=env)
    try:
        out.wait_for(lambda lines: any("retrying in 600s" in x for x in lines), "a long wait")
        away.back()
        ws.user_commit({"notes.md": "back\n"}, "the remote is back")  # from the watched clone
        # the daemon would wait ten minutes; the push wakes it (the timeout is a hang guard)
        out.wait_for(lambda lines: any(x.startswith("pass at ") for x in lines), "a pass", 300)
        assert out.count("retrying in") == 1
        deadline = time.monotonic() + 120
        while ws.remote_file("status/repo.yaml") is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        away.back()
        stop_daemon(proc, out)


def test_a_daemon_started_while_the_remote_is_away_migrates_once_it_is_back(
    workspace_factory,
) -> None:
    """Away at start, then back with no push to wake the daemon: its own retries find the
    remote, and the migration runs to its final status there."""
    ws = workspace_factory([small_vm("later", 6)])
    env = {"MTV_GITOPS_GIT_RETRY_FIRST": "0.2", "MTV_GITOPS_GIT_RETRY_MAX": "1.6"}
    away = RemoteAway(ws.remote).__enter__()
    proc, out = start_daemon(ws, interval=3600, env=env)
    try:
        out.wait_for(lambda lines: sum(bool(RETRY.search(x)) for x in lines) >= 3, "retries")
        away.back()
        out.wait_for(lambda lines: any(x.startswith("pass at ") for x in lines), "a pass", 300)
        wait_until(lambda: _phase(ws) == "Completed", 300, lambda: "\n".join(out.lines))
        assert (ws.cluster / "demo-vms" / "virtualmachines" / "later.yaml").exists()
    finally:
        away.back()
        stop_daemon(proc, out)


def _phase(ws) -> str | None:
    text = ws.remote_file("status/plan/openshift-mtv/demo-plan.yaml")
    vms = YAML(typ="safe").load(text)["status"]["migration"]["vms"] if text else []
    return vms[0]["phase"] if vms else None
