"""The NBD client against a real qemu-nbd, plus a scripted server for the legacy handshake."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.transfer import nbd
from reconciler.transfer.nbd import NbdClient, NbdError

MiB = 1024 * 1024
SIZE = 40 * MiB + 512  # not a multiple of the 32 MiB request cap


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    if shutil.which("qemu-nbd") is None:
        pytest.skip("qemu-nbd not installed")
    folder = tmp_path_factory.mktemp("nbd")
    data = os.urandom(SIZE)
    image = folder / "disk.raw"
    image.write_bytes(data)
    sock = str(folder / "nbd.sock")
    proc = subprocess.Popen(
        ["qemu-nbd", "--read-only", "--persistent", "--shared=4", f"--socket={sock}"]
        + ["-x", "exp", "-f", "raw", str(image)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120  # a safety net, not a measure of speed
    while not os.path.exists(sock):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    yield sock, data
    proc.terminate()
    proc.wait(5)


@pytest.mark.integration
def test_handshake_and_whole_read(served: tuple[str, bytes]) -> None:
    sock, data = served
    with NbdClient(sock, "exp") as c:
        assert c.size == SIZE and c.read_only
        assert c.max_block <= nbd.DEFAULT_MAX_REQUEST
        assert c.read(0, SIZE) == data
        assert c.read(SIZE - 5, 100) == data[-5:]
        buf = bytearray(3 * MiB + 1)
        c.readinto(7 * MiB + 3, buf)
        assert buf == data[7 * MiB + 3 : 10 * MiB + 4]
        with pytest.raises(NbdError, match="outside the export"):
            c.readinto(SIZE - 1, bytearray(2))
    assert c.closed
    with pytest.raises(NbdError, match="closed"):
        c.read(0, 1)


@pytest.mark.integration
def test_parallel_connections(served: tuple[str, bytes]) -> None:
    sock, data = served
    chunk = 5 * MiB
    out: dict[int, bytes] = {}

    def worker(offset: int) -> None:
        with NbdClient(sock, "exp") as c:
            out[offset] = c.read(offset, chunk)

    threads = [threading.Thread(target=worker, args=(o,)) for o in range(0, SIZE, chunk)[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for offset, part in out.items():
        assert part == data[offset : offset + chunk]


@pytest.mark.integration
def test_unknown_export_and_missing_socket(served: tuple[str, bytes], tmp_path: Path) -> None:
    sock, _ = served
    with pytest.raises(NbdError, match="unknown export"):
        NbdClient(sock, "nope")
    with pytest.raises(NbdError, match="connection to"):
        NbdClient(tmp_path / "absent.sock", "exp")


class _LegacyServer(threading.Thread):
    """Fixed newstyle, but answers NBD_OPT_GO with ERR_UNSUP and serves one read."""

    def __init__(self, path: str, payload: bytes) -> None:
        super().__init__(daemon=True)
        self.payload = payload
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.disconnected = False

    def _exact(self, conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            got = conn.recv(n - len(buf))
            if not got:
                raise EOFError
            buf += got
        return buf

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(struct.pack(">QQH", nbd.NBDMAGIC, nbd.IHAVEOPT, 1))  # no NO_ZEROES
            self._exact(conn, 4)
            while True:
                _, option, length = struct.unpack(">QII", self._exact(conn, 16))
                self._exact(conn, length)
                if option == nbd.OPT_EXPORT_NAME:
                    conn.sendall(struct.pack(">QH", len(self.payload), 3) + bytes(124))
                    break
                reply = struct.pack(">QIII", nbd.REPLY_MAGIC, option, nbd.REP_ERR_UNSUP, 0)
                conn.sendall(reply)
            while True:
                magic, _, cmd, handle, offset, length = struct.unpack(
                    ">IHHQQI", self._exact(conn, 28)
                )
                assert magic == nbd.REQUEST_MAGIC
                if cmd == nbd.CMD_DISC:
                    self.disconnected = True
                    return
                conn.sendall(
                    struct.pack(">IIQ", nbd.SIMPLE_REPLY_MAGIC, 0, handle)
                    + self.payload[offset : offset + length]
                )


def test_falls_back_to_export_name(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 64
    server = _LegacyServer(str(tmp_path / "legacy.sock"), payload)
    server.start()
    with NbdClient(tmp_path / "legacy.sock", "x") as c:
        assert c.size == len(payload) and c.read_only
        assert c.read(100, 1000) == payload[100:1100]
    server.join(5)
    assert server.disconnected


def test_not_an_nbd_server(tmp_path: Path) -> None:
    path = str(tmp_path / "other.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(NbdError, match="not an NBD server"):
        NbdClient(path)
    listener.close()
