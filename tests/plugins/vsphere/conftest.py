"""A real vCenter simulator (govmomi's, from Debian's packages) built once and run per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

SOURCE = Path(__file__).parent / "simulator"  # main.go and cbt.go: one Go package
GOPATH = "/usr/share/gocode"


def simulator_binary() -> Path:
    """Build tests/plugins/vsphere/simulator/ once per content (about 15 s), cached."""
    if shutil.which("go") is None or not Path(GOPATH, "src/github.com/vmware/govmomi").is_dir():
        pytest.fail(
            "the vCenter simulator needs Debian's golang-go and golang-github-vmware-govmomi-dev;"
            " `make test` installs them when run as root"
        )
    digest = hashlib.sha256(
        b"".join(f.read_bytes() for f in sorted(SOURCE.glob("*.go")))
    ).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"
    binary = cache / f"vcsim-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOCACHE=str(cache / "go-build"))
        tmp = binary.with_suffix(".tmp")
        subprocess.run(["go", "build", "-o", str(tmp), "."], check=True, env=env, cwd=SOURCE)
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
            self.proc.wait(10)


def start_simulator(**flags: int | str) -> Simulator:
    args = [str(simulator_binary())] + [f"-{k}={v}" for k, v in flags.items()]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise RuntimeError(f"the simulator did not start (exit {proc.wait()})")
    u = urlparse(line)
    return Simulator(
        f"https://{u.hostname}:{u.port}{u.path}", u.username, u.password, u.hostname, u.port, proc
    )


@pytest.fixture(scope="module")
def vcsim() -> Iterator[Simulator]:
    sim = start_simulator(hosts=2, vms=3, datastores=2, password="vc-Secret-7781")
    yield sim
    sim.stop()
