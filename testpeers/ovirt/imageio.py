"""The oVirt disk peers: the real ovirt-imageio daemon (PyPI, GPL) in a cached virtualenv of
its own, run as a separate process and never imported here; images exported by
``qemu-nbd --read-only --allocation-depth`` so its extents and holes are real; a test CA that
signs both the daemon's and the test engine's certificates, as an engine's CA signs its hosts'.

Tickets are added through the daemon's control socket (HTTP over a unix socket), as the engine
(through vdsm) does.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from testpeers.pki import Pki
from testpeers.process import dies_with_parent

IMAGEIO = "ovirt-imageio==2.5.1"
SDK = "ovirt-engine-sdk-python==4.6.3"  # ovirt-img (the outside check) talks to the engine
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mtv-gitops"
_LOCK = threading.Lock()


def imageio_venv() -> Path:
    """A virtualenv with ovirt-imageio and ovirt-engine-sdk-python, built once under
    ``~/.cache/mtv-gitops/imageio-<hash>/`` (temp dir + rename: never seen half-built).
    Its scripts are run as ``<venv>/bin/python -c`` so the renamed folder needs no shebangs."""
    key = hashlib.sha256(f"{IMAGEIO} {SDK} {sys.version_info[:2]}".encode()).hexdigest()[:12]
    final = CACHE / f"imageio-{key}"
    with _LOCK:
        if (final / "bin" / "python").exists():
            return final
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"imageio-{key}.", dir=CACHE))
        try:
            subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
            subprocess.run(
                [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", IMAGEIO, SDK],
                check=True,
                capture_output=True,
                text=True,
            )
            try:
                tmp.rename(final)
            except OSError:  # another process finished first: use its copy
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final


class NbdExport:
    """``qemu-nbd --read-only --allocation-depth`` serving one image on a unix socket; with
    ``bitmap``, that persistent dirty bitmap of the qcow2 image too (``qemu:dirty-bitmap:``,
    what the daemon's ``extents?context=dirty`` reads), as vdsm exports a backup's disks."""

    def __init__(self, image: Path, folder: Path, fmt: str, bitmap: str = "") -> None:
        self.image, self.format = image, fmt
        self.socket = folder / f"{image.name}.nbd.sock"
        self._pidfile = folder / f"{image.name}.nbd.pid"
        # --fork: the command returns once the socket is ready to serve
        subprocess.run(
            [
                "qemu-nbd",
                "--read-only",
                "--allocation-depth",
                "--persistent",
                "--shared=8",
                "--fork",
                f"--pid-file={self._pidfile}",
                f"--socket={self.socket}",
                f"--format={fmt}",
                *([f"--bitmap={bitmap}"] if bitmap else []),
                str(image),
            ],
            check=True,
        )
        self.pid = int(self._pidfile.read_text())

    @property
    def url(self) -> str:
        return f"nbd:unix:{self.socket}"

    def stop(self) -> None:
        """Stop it and return once it has exited (its image lock is released then)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            select.select([fd], [], [], 30)  # readable when the process has exited
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self._path)


class ImageioDaemon:
    """The ovirt-imageio daemon, TLS on 127.0.0.1 with the test CA's certificate, its control
    service on a unix socket. ``start`` waits for its "listening" log line, not for time."""

    def __init__(self, folder: Path, pki: Pki) -> None:
        self.folder, self.pki = folder, pki
        self.venv = imageio_venv()
        self.conf = folder / "imageio-conf"
        (self.conf / "conf.d").mkdir(parents=True, exist_ok=True)
        self.control = folder / "imageio-control.sock"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _write_conf(self) -> None:
        (self.conf / "conf.d" / "99-test.conf").write_text(
            f"""[daemon]
systemd_enable = false
drop_privileges = false
run_dir = {self.folder}
poll_interval = 0.2

[tls]
enable = true
key_file = {self.pki.key}
cert_file = {self.pki.cert}
ca_file = {self.pki.ca_cert}

[remote]
host = 127.0.0.1
port = {self.port}

[local]
enable = false

[control]
transport = unix
socket = {self.control}

[handlers]
keys = stderr

[logger_root]
level = INFO
handlers = stderr
"""
        )

    def start(self) -> None:
        """Start (again, on the same port after a restart)."""
        self._write_conf()
        self.proc = subprocess.Popen(
            dies_with_parent(
                [
                    str(self.venv / "bin" / "python"),
                    "-c",
                    "from ovirt_imageio._internal import server; server.main()",
                    "--conf-dir",
                    str(self.conf),
                ]
            ),
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        listening = re.compile(r"remote\.service listening on \('127\.0\.0\.1', (\d+)\)")
        seen = []
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            seen.append(line)
            m = listening.search(line)
            if m:
                self.port = int(m.group(1))
                break
        else:
            raise RuntimeError("ovirt-imageio did not start:\n" + "".join(seen))
        # keep draining its log so it never blocks on a full pipe
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        self._wait_control()  # the control service starts after the remote one

    def _drain(self, proc: subprocess.Popen) -> None:
        for _ in proc.stderr or ():
            pass

    def _wait_control(self) -> None:
        while True:
            try:
                self._request("GET", "/tickets/none")
                return
            except (FileNotFoundError, ConnectionRefusedError):
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError("ovirt-imageio exited") from None
                threading.Event().wait(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash: its tickets are gone with it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, ticket: str) -> str:
        return f"https://127.0.0.1:{self.port}/images/{ticket}"

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        con = _UnixConnection(self.control)
        try:
            data = json.dumps(body).encode() if body is not None else None
            con.request(method, path, body=data)
            resp = con.getresponse()
            return resp.status, resp.read()
        finally:
            con.close()

    def add_ticket(self, url: str, size: int, ops: tuple[str, ...] = ("read",), **extra) -> str:
        """A ticket for ``url`` (``nbd:unix:...``), as the engine adds one for a transfer."""
        ticket = str(uuid.uuid4())
        status, body = self._request(
            "PUT",
            f"/tickets/{ticket}",
            {
                "uuid": ticket,
                "size": size,
                "url": url,
                "timeout": 3600,
                "ops": list(ops),
                "inactivity_timeout": 3600,
                **extra,
            },
        )
        if status != 200:
            raise RuntimeError(f"imageio refused the ticket: {status} {body!r}")
        return ticket

    def del_ticket(self, ticket: str) -> None:
        self._request("DELETE", f"/tickets/{ticket}")

    def tickets(self, ticket: str) -> dict | None:
        status, body = self._request("GET", f"/tickets/{ticket}")
        return json.loads(body) if status == 200 else None
