"""govmomi's vCenter simulator with changed block tracking (``main.go``, ``cbt.go``), built
from Debian's packages and started as a subprocess: the tests' vCenter and
``mtv-gitops demo --warm``'s.

:func:`simulator_binary` builds the Go sources beside this file once per content into
``~/.cache/mtv-gitops/vcsim-<hash>`` (about 15 s); when go or govmomi is missing it installs
them with apt-get as root, and raises :class:`SimulatorUnavailable` otherwise.
:func:`start_simulator` runs one; it serves until :meth:`Simulator.stop` closes its stdin.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SOURCE = Path(__file__).parent  # main.go and cbt.go: one Go package (GO111MODULE=off)
GOPATH = "/usr/share/gocode"
DEBIAN_PACKAGES = ("golang-go", "golang-github-vmware-govmomi-dev")


class SimulatorUnavailable(RuntimeError):
    """The simulator cannot be built here (go or govmomi missing and not root to install)."""


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _have_toolchain() -> bool:
    return shutil.which("go") is not None and Path(GOPATH, "src/github.com/vmware/govmomi").is_dir()


def ensure_toolchain(log: Callable[[str], None] = _log) -> None:
    """go and govmomi from Debian: installed with apt-get when root, as `make system-deps` does."""
    if _have_toolchain():
        return
    packages = " ".join(DEBIAN_PACKAGES)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SimulatorUnavailable(
            f"the vCenter simulator needs Debian's {' and '.join(DEBIAN_PACKAGES)}; run as root "
            f"(`make test` and `make demo-warm` install them) or: sudo apt-get install {packages}"
        )
    log(f"mtv-gitops: installing Debian packages {packages} (the vCenter simulator)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *DEBIAN_PACKAGES],
            check=True,
            env=env,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        raise SimulatorUnavailable(
            f"apt-get could not install {packages}: {exc.stderr.decode(errors='replace')[-500:]}"
        ) from None
    if not _have_toolchain():
        raise SimulatorUnavailable(f"{packages} installed, yet go or govmomi is still missing")


def simulator_binary(log: Callable[[str], None] = _log) -> Path:
    """The simulator built from the Go sources beside this file, once per content, cached."""
    ensure_toolchain(log)
    digest = hashlib.sha256(
        b"".join(f.read_bytes() for f in sorted(SOURCE.glob("*.go")))
    ).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"
    binary = cache / f"vcsim-{digest}"
    if not binary.exists():
        log(f"mtv-gitops: building the vCenter simulator (once, about 15 s) -> {binary}")
        cache.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOCACHE=str(cache / "go-build"))
        tmp = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
        proc = subprocess.run(
            ["go", "build", "-o", str(tmp), "."],
            env=env,
            cwd=SOURCE,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SimulatorUnavailable(f"go build of {SOURCE} failed:\n{proc.stderr[-2000:]}")
        tmp.rename(binary)
    return binary


@dataclass
class Simulator:
    url: str  # https://127.0.0.1:PORT/sdk
    user: str
    password: str
    host: str
    port: int
    proc: subprocess.Popen

    def secret(self, **extra: str) -> dict[str, str]:
        return {"user": self.user, "password": self.password, **extra}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the simulator exits when its stdin closes
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_simulator(*, stderr: Any = None, **flags: int | str) -> Simulator:
    """Start one simulator, e.g. ``start_simulator(hosts=1, vms=1, datastores=2)``; its log
    goes to ``stderr`` (a file, or None: ours)."""
    args = [str(simulator_binary())] + [f"-{k}={v}" for k, v in flags.items()]
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start (exit {proc.wait()})")
    u = urlparse(line)
    return Simulator(
        f"https://{u.hostname}:{u.port}{u.path}", u.username, u.password, u.hostname, u.port, proc
    )


__all__ = [
    "GOPATH",
    "SOURCE",
    "Simulator",
    "SimulatorUnavailable",
    "ensure_toolchain",
    "simulator_binary",
    "start_simulator",
]
