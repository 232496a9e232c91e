"""A small, dependency-free NBD client for reading disk images served by ``qemu-nbd``.

Only what the transfer engine needs: the fixed-newstyle handshake over a unix socket,
``NBD_OPT_GO`` (falling back to ``NBD_OPT_EXPORT_NAME`` for old servers), ``NBD_CMD_READ``
with simple replies and a clean ``NBD_CMD_DISC``.  Reads land directly in a caller-supplied
buffer (``recv_into``) so copying a large range does not allocate per chunk.

Protocol reference: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from types import TracebackType

# Handshake.
NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OLDSTYLE_MAGIC = 0x00420281861253
REPLY_MAGIC = 0x3E889045565A9
FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0
CLIENT_FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_GO = 7

REP_ACK = 1
REP_INFO = 3
REP_ERR = 1 << 31
REP_ERR_UNSUP = REP_ERR | 1
REP_ERRORS = {
    REP_ERR | 1: "unsupported option",
    REP_ERR | 2: "denied by server policy",
    REP_ERR | 3: "invalid option",
    REP_ERR | 4: "not supported on this platform",
    REP_ERR | 5: "TLS required",
    REP_ERR | 6: "unknown export",
    REP_ERR | 7: "server shutting down",
    REP_ERR | 8: "block size negotiation required",
    REP_ERR | 9: "request too big",
}

INFO_EXPORT = 0
INFO_BLOCK_SIZE = 3

# Transmission.
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
CMD_READ = 0
CMD_DISC = 2
TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1

ERRNO_NAMES = {
    1: "EPERM",
    5: "EIO",
    12: "ENOMEM",
    22: "EINVAL",
    28: "ENOSPC",
    75: "EOVERFLOW",
    95: "ENOTSUP",
    108: "ESHUTDOWN",
}

DEFAULT_MAX_REQUEST = 32 * 1024 * 1024  # what every server must accept per the spec

_OPT_HEADER = struct.Struct(">QII")
_OPT_REPLY = struct.Struct(">QIII")
_REQUEST = struct.Struct(">IHHQQI")
_SIMPLE_REPLY = struct.Struct(">IIQ")


class NbdError(Exception):
    """The NBD server refused, failed a request or broke the protocol."""


class NbdClient:
    """One NBD connection to one export.

    A connection carries one request at a time; a lock makes a shared instance safe but
    serial.  For parallel reads open one client per stream.
    """

    def __init__(
        self, socket_path: str | Path, export_name: str = "", timeout: float | None = 60.0
    ) -> None:
        self.socket_path = str(socket_path)
        self.export_name = export_name
        self.size = 0
        self.transmission_flags = 0
        self.min_block = 1
        self.preferred_block = 4096
        self.max_block = DEFAULT_MAX_REQUEST
        self._lock = threading.Lock()
        self._cookie = 0
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.socket_path)
            self._handshake()
        except OSError as e:
            self._abandon()
            raise NbdError(f"NBD connection to {self.socket_path} failed: {e}") from e
        except BaseException:
            self._abandon()
            raise

    # -- handshake -------------------------------------------------------------------

    def _handshake(self) -> None:
        magic, opt_magic = struct.unpack(">QQ", self._recv_exact(16))
        if magic != NBDMAGIC:
            raise NbdError(f"{self.socket_path} is not an NBD server (bad magic {magic:#x})")
        if opt_magic == OLDSTYLE_MAGIC:
            raise NbdError(f"{self.socket_path} speaks oldstyle NBD, which is not supported")
        if opt_magic != IHAVEOPT:
            raise NbdError(f"unexpected NBD handshake magic {opt_magic:#x}")
        (server_flags,) = struct.unpack(">H", self._recv_exact(2))
        if not server_flags & FLAG_FIXED_NEWSTYLE:
            raise NbdError("NBD server does not support the fixed newstyle handshake")
        no_zeroes = bool(server_flags & FLAG_NO_ZEROES)
        client_flags = CLIENT_FLAG_FIXED_NEWSTYLE | (CLIENT_FLAG_NO_ZEROES if no_zeroes else 0)
        self._send(struct.pack(">I", client_flags))
        if not self._opt_go():
            self._opt_export_name(no_zeroes)

    def _send_option(self, option: int, data: bytes) -> None:
        self._send(_OPT_HEADER.pack(IHAVEOPT, option, len(data)) + data)

    def _opt_go(self) -> bool:
        """Negotiate with NBD_OPT_GO; ``False`` when the server does not know the option."""
        name = self.export_name.encode()
        infos = (INFO_BLOCK_SIZE,)
        payload = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
        payload += b"".join(struct.pack(">H", i) for i in infos)
        self._send_option(OPT_GO, payload)
        got_export = False
        while True:
            magic, option, reply, length = _OPT_REPLY.unpack(self._recv_exact(_OPT_REPLY.size))
            if magic != REPLY_MAGIC:
                raise NbdError(f"bad NBD option reply magic {magic:#x}")
            if option != OPT_GO:
                raise NbdError(f"NBD reply for option {option}, expected {OPT_GO}")
            data = self._recv_exact(length) if length else b""
            if reply == REP_ACK:
                if not got_export:
                    raise NbdError("NBD server acknowledged GO without export information")
                return True
            if reply == REP_INFO:
                self._apply_info(data)
                if len(data) >= 2 and struct.unpack(">H", data[:2])[0] == INFO_EXPORT:
                    got_export = True
                continue
            if reply == REP_ERR_UNSUP:
                return False
            if reply & REP_ERR:
                what = REP_ERRORS.get(reply, f"error {reply & ~REP_ERR}")
                detail = data.decode("utf-8", "replace")
                self._abort_options()
                raise NbdError(
                    f"NBD server refused export {self.export_name!r}: {what}"
                    + (f" ({detail})" if detail else "")
                )
            # Unknown non-error replies must be ignored by a conforming client.

    def _abort_options(self) -> None:
        """Tell the server we give up negotiating, so it does not log a protocol error."""
        try:
            self._send_option(OPT_ABORT, b"")
            _OPT_REPLY.unpack(self._recv_exact(_OPT_REPLY.size))
        except (OSError, NbdError):
            pass

    def _apply_info(self, data: bytes) -> None:
        if len(data) < 2:
            raise NbdError("truncated NBD_REP_INFO")
        (info,) = struct.unpack(">H", data[:2])
        if info == INFO_EXPORT:
            if len(data) != 12:
                raise NbdError("malformed NBD_INFO_EXPORT")
            self.size, self.transmission_flags = struct.unpack(">QH", data[2:12])
        elif info == INFO_BLOCK_SIZE:
            if len(data) != 14:
                raise NbdError("malformed NBD_INFO_BLOCK_SIZE")
            self.min_block, self.preferred_block, max_block = struct.unpack(">III", data[2:14])
            self.max_block = max(self.min_block, min(max_block, DEFAULT_MAX_REQUEST))

    def _opt_export_name(self, no_zeroes: bool) -> None:
        """Legacy negotiation: the server closes the socket if the export is unknown."""
        self._send_option(OPT_EXPORT_NAME, self.export_name.encode())
        try:
            data = self._recv_exact(10 if no_zeroes else 134)
        except NbdError as e:
            raise NbdError(f"NBD server refused export {self.export_name!r}") from e
        self.size, self.transmission_flags = struct.unpack(">QH", data[:10])

    # -- transmission ----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the socket is gone (closed by us, or broken by a protocol error)."""
        return self._sock is None

    @property
    def read_only(self) -> bool:
        return bool(self.transmission_flags & TFLAG_READ_ONLY)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, clipped at the end of the export."""
        length = max(0, min(length, self.size - offset))
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf))
        return bytes(buf)

    def readinto(self, offset: int, buf: memoryview | bytearray) -> None:
        """Fill ``buf`` with the export's bytes from ``offset`` (must lie inside the export).

        Large ranges are split at the server's maximum request size; unaligned edges are
        read through a small bounce buffer when the server needs aligned requests.
        """
        view = memoryview(buf).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise NbdError(
                f"read of {len(view)} bytes at {offset} is outside the export (size {self.size})"
            )
        with self._lock:
            try:
                self._readinto_locked(offset, view)
            except OSError as e:
                self._abandon()
                raise NbdError(f"NBD read at {offset} from {self.socket_path} failed: {e}") from e

    def _readinto_locked(self, offset: int, view: memoryview) -> None:
        align = self.min_block
        pos = 0
        while pos < len(view):
            off = offset + pos
            if align > 1 and (off % align or len(view) - pos < align):
                start = off - off % align
                end = min(start + align, self.size)
                bounce = bytearray(end - start)
                self._read_locked(start, memoryview(bounce))
                n = min(end - off, len(view) - pos)
                view[pos : pos + n] = bounce[off - start : off - start + n]
                pos += n
                continue
            n = min(self.max_block, len(view) - pos)
            if align > 1:
                n -= n % align
            self._read_locked(off, view[pos : pos + n])
            pos += n

    def _read_locked(self, offset: int, view: memoryview) -> None:
        sock = self._require_open()
        self._cookie += 1
        cookie = self._cookie
        sock.sendall(_REQUEST.pack(REQUEST_MAGIC, 0, CMD_READ, cookie, offset, len(view)))
        magic, error, handle = _SIMPLE_REPLY.unpack(self._recv_exact(_SIMPLE_REPLY.size))
        if magic != SIMPLE_REPLY_MAGIC:
            self._abandon()
            raise NbdError(f"bad NBD reply magic {magic:#x} (structured replies not negotiated)")
        if handle != cookie:
            self._abandon()
            raise NbdError(f"NBD reply for request {handle}, expected {cookie}")
        if error:
            name = ERRNO_NAMES.get(error, str(error))
            raise NbdError(f"NBD read of {len(view)} bytes at {offset} failed: {name}")
        self._recv_into(view)

    # -- plumbing --------------------------------------------------------------------

    def _require_open(self) -> socket.socket:
        if self._sock is None:
            raise NbdError("NBD connection is closed")
        return self._sock

    def _send(self, data: bytes) -> None:
        self._require_open().sendall(data)

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        self._recv_into(memoryview(buf))
        return bytes(buf)

    def _recv_into(self, view: memoryview) -> None:
        sock = self._require_open()
        pos = 0
        while pos < len(view):
            got = sock.recv_into(view[pos:], len(view) - pos)
            if got == 0:
                self._abandon()
                raise NbdError(f"NBD server {self.socket_path} closed the connection")
            pos += got

    def _abandon(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        """Say goodbye (``NBD_CMD_DISC``) and close the socket; safe to call twice."""
        with self._lock:
            if self._sock is None:
                return
            try:
                self._sock.sendall(_REQUEST.pack(REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
            except OSError:
                pass
            self._abandon()

    def __enter__(self) -> NbdClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
