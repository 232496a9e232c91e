"""The NFS test peer: nfs-ganesha 4.3 (Debian) in user
space on 127.0.0.1, started by the tests (``tests/support/nfs_server.py``) and by
``bench/bench_nfs_ova.py``; the plugin itself never imports it.

``rpcbind -f`` must run first (ganesha registers NFSv3 and MOUNT with it); rpcbind on port 111
is shared by the whole machine, so one already running is reused and left alone. Both run with
a parent-death signal in their own process group, so a killed pytest leaves nothing behind.
Two exports: ``/export`` (no root squash, what the migrations read) and ``/squashed`` (root
squashed, for the permission test). The server can be stopped and started again mid-copy.
The tests write the exported folders directly, not through NFS, so ganesha must not keep
attributes cached (``Attr_Expiration_Time = 0``): a new OVA shows up at the next GETATTR.

One server at a time on this machine: NFSv3 clients (nfs-rs, libnfs, qemu) find the server
through rpcbind, which holds one registration per program and version, so a second ganesha on
another port would take the first one's registration over. Two test runs (or a test run and
the benchmark) therefore take turns: the server holds ``LOCK`` from its first start to close.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from reconciler.transfer import children

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
LOCK = "/tmp/mtv-gitops-nfs-server.lock"  # held while a server runs (see the module docstring)
LOCK_TIMEOUT = 900.0  # another run's server: wait for its session to end

CONF = """\
NFS_CORE_PARAM {{
  Bind_addr = {host}; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false;
}}
NFSV4 {{ Graceless = true; }}
EXPORT {{
  Export_Id = 1; Path = {export}; Pseudo = {export};
  Access_Type = RO; Squash = No_Root_Squash; SecType = sys; Protocols = 3, 4; Transports = TCP;
  Attr_Expiration_Time = 0;
  FSAL {{ Name = VFS; }}
}}
EXPORT {{
  Export_Id = 2; Path = {squashed}; Pseudo = {squashed};
  Access_Type = RO; Squash = Root_Squash; SecType = sys; Protocols = 3, 4; Transports = TCP;
  Attr_Expiration_Time = 0;
  FSAL {{ Name = VFS; }}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def available() -> str:
    """ "" when the server can run here, else why not (a skip reason)."""
    for tool in ("ganesha.nfsd", "rpcbind", "rpcinfo"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (tools/system-deps/nfs.sh)"
    return ""


class NfsServer:
    """ganesha.nfsd serving ``root/export`` and ``root/squashed``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.export = root / "export"
        self.squashed = root / "squashed"
        for folder in (self.export, self.squashed):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755)
        self.conf = root / "ganesha.conf"
        self.log = root / "ganesha.log"
        self.conf.write_text(CONF.format(host=HOST, export=self.export, squashed=self.squashed))
        self.rpcbind: subprocess.Popen[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    def _take_turn(self) -> None:
        """Wait until no other server of ours runs here (one rpcbind registration)."""
        if self._lock is not None:
            return
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RuntimeError(f"another NFS test server held {LOCK} too long") from None
                time.sleep(0.5)
        self._lock = fd

    def url(self, export: Path | None = None) -> str:
        """Forklift's form, ``<server>:/<export>``."""
        return f"{HOST}:{export or self.export}"

    def _ensure_rpcbind(self) -> None:
        if _listening(111):
            return  # the machine's rpcbind: shared, not ours to stop
        sbin = shutil.which("rpcbind") or "/usr/sbin/rpcbind"
        self.rpcbind = children.spawn(
            [sbin, "-f", "-w"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(111):
            if self.rpcbind.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rpcbind did not start")
            time.sleep(0.05)

    def start(self) -> NfsServer:
        """Start ganesha and wait until its exports answer a MOUNT listing."""
        self._take_turn()
        deadline = time.monotonic() + LOCK_TIMEOUT
        while _listening(2049):  # a server that takes no turns (an older checkout's): wait
            if time.monotonic() > deadline:
                raise RuntimeError("port 2049 on 127.0.0.1 is taken: another NFS server runs here")
            time.sleep(0.5)
        self._ensure_rpcbind()
        self.proc = children.spawn(
            [
                shutil.which("ganesha.nfsd") or "/usr/bin/ganesha.nfsd",
                "-F",
                "-f",
                str(self.conf),
                "-L",
                str(self.log),
                "-p",
                str(self.root / "ganesha.pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import nfs_rs

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ganesha.nfsd exited: {self.log.read_text()[-2000:]}")
            if _listening(2049):
                try:
                    exports = nfs_rs.list_exports(f"nfs://{HOST}/")
                except Exception:  # noqa: BLE001 - not registered yet
                    exports = ()
                if any(e.path == str(self.export) for e in exports):
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"ganesha.nfsd did not serve: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Kill ganesha at once (as a crash would); the test's copy sees the server gone."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
        deadline = time.monotonic() + START_TIMEOUT
        while _listening(2049) and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.stop()
        if self.rpcbind is not None:
            try:
                os.killpg(self.rpcbind.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.rpcbind.wait()
            self.rpcbind = None
        if self._lock is not None:
            os.close(self._lock)  # releases the flock: the next run's server may start
            self._lock = None
