"""Run a hook on this machine: the local target's hooks, and ``make demo``'s.

The inputs go into a temporary folder laid out as Forklift mounts them at ``/tmp/hook``
(``playbook.yml``, ``plan.yml``, ``workload.yml``).  A playbook for the hook-runner image runs
with ``ansible-playbook`` from this program's environment; ``/tmp/hook/`` in it names the
folder, so playbooks that read their inputs by the absolute paths of the MTV docs' example work
as well as those that read them relative to the playbook.  Any other image runs with podman or
docker, the folder mounted at ``/tmp/hook``.  The process runs in its own process group, which
is killed at the Hook's deadline or on shutdown, children included.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from reconciler.hooks.model import HookOutcome, HookRun, tail

MOUNT = "/tmp/hook"  # where Forklift mounts a hook's inputs  # noqa: S108 - Forklift's path
RUNNER_COMMAND = ("/bin/entrypoint", "ansible-runner", "run", "/tmp/runner", "-p")
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL of a hook's process group
POLL = 0.2  # how soon a shutdown is noticed while a hook runs


def ansible_playbook() -> list[str] | None:
    """How to run ``ansible-playbook``: with this Python when ansible-core is installed beside
    this program (no virtualenv needs activating), else the one on PATH."""
    if importlib.util.find_spec("ansible") is not None:
        return [sys.executable, "-m", "ansible", "playbook"]
    found = shutil.which("ansible-playbook")
    return [found] if found else None


def container_runtime() -> str | None:
    """podman, else docker, as found on PATH."""
    return shutil.which("podman") or shutil.which("docker")


def write_inputs(run: HookRun, folder: Path, mount: str | None = None) -> None:
    """The three files a hook reads; ``/tmp/hook/`` in the playbook becomes ``mount``."""
    playbook = run.hook.playbook
    if mount is not None:
        playbook = playbook.replace(f"{MOUNT}/", f"{mount.rstrip('/')}/")
    (folder / "playbook.yml").write_text(playbook)
    (folder / "plan.yml").write_text(run.plan_yml)
    (folder / "workload.yml").write_text(run.workload_yml)


def run_local(
    run: HookRun,
    clock: Callable[[], float] = time.monotonic,
    env: dict[str, str] | None = None,
) -> HookOutcome:
    """Run the hook here and wait for it (its deadline, or a shutdown, ends it sooner);
    ``env`` is added to a playbook's environment."""
    hook = run.hook
    with tempfile.TemporaryDirectory(prefix="mtv-gitops-hook-") as tmp:
        folder = Path(tmp)
        if hook.playbook and hook.runner_image:
            program = ansible_playbook()
            if program is None:
                return HookOutcome(
                    False,
                    "ansible-playbook",
                    "ansible-playbook is not installed: pip install ansible-core (make "
                    "install does), then push a new Migration",
                )
            write_inputs(run, folder, mount=str(folder))
            argv = [*program, str(folder / "playbook.yml")]
            how = "ansible-playbook"
        else:
            runtime = container_runtime()
            if runtime is None:
                return HookOutcome(
                    False,
                    f"image {hook.image}",
                    f"the hook's image {hook.image} runs on the local target with podman or "
                    "docker, and neither is installed here: install one, or run the plan on "
                    "a KubeVirt target",
                )
            write_inputs(run, folder)
            name = Path(runtime).name
            argv = [runtime, "run", "--rm", "-v", f"{folder}:{MOUNT}", hook.image]
            if hook.playbook:
                argv += [*RUNNER_COMMAND, f"{MOUNT}/playbook.yml"]
            how = f"{name} run {hook.image}"
        return _follow(argv, folder, how, run, clock, env or {})


def _env(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env.update(
        {
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_LOCAL_TEMP": str(folder / ".ansible" / "tmp"),
            "ANSIBLE_HOME": str(folder / ".ansible"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _follow(
    argv: list[str],
    folder: Path,
    how: str,
    run: HookRun,
    clock: Callable[[], float],
    extra: dict[str, str],
) -> HookOutcome:
    lines: collections.deque[str] = collections.deque(maxlen=200)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=folder,
            env=_env(folder, extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: killed whole
        )
    except OSError as exc:
        return HookOutcome(False, how, f"{how} could not start: {exc}")
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    deadline = clock() + run.hook.deadline if run.hook.deadline > 0 else None
    ended = ""
    while proc.poll() is None:
        if run.halt.is_set():
            ended = "halted"
        elif deadline is not None and clock() >= deadline:
            ended = "deadline"
        if ended:
            _kill_group(proc)
            break
        try:
            proc.wait(POLL)
        except subprocess.TimeoutExpired:
            pass
    reader.join(KILL_GRACE)
    log = tail("\n".join(lines))
    if ended == "halted":
        return HookOutcome(False, how, "stopped by a shutdown; it runs again", log, halted=True)
    if ended == "deadline":
        return HookOutcome(
            False, how, f"exceeded its deadline of {run.hook.deadline} s and was killed", log
        )
    if proc.returncode != 0:
        last = f": {log[-1]}" if log else ""
        return HookOutcome(False, how, f"exited with code {proc.returncode}{last}", log)
    return HookOutcome(True, how, "", log)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the hook's process group, SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            if sig == signal.SIGTERM:
                # the leader is gone; its children may not be
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
