"""Bulk reads of a file on an NFS share with libnfs (Debian ``libnfs13``), through ctypes.

Why a second client next to ``nfs-rs``: measured against ganesha on 127.0.0.1 (256 MiB, busy
2-core machine; ``bench/bench_nfs_ova.py`` and the profile in the README), every ``nfs-rs``
read zero-fills a fresh buffer and copies it into the caller's (two extra passes over every
byte, a third of its CPU in ``memset``/``memmove``) and costs about 0.1 ms of CPU per call:
its best serial loop reads at 0.5-0.9x ``nfs-cat``, the plugin's pipeline at 0.4-0.55x. libnfs
(what ``nfs-cat`` and qemu's ``nfs`` block driver are built on; the image has it for qemu
already) reads a READ reply of up to the server's ``rtmax`` straight into the caller's
buffer: one RPC of ``readmax`` bytes per call, the same pattern as ``nfs-cat``, reads at
1.0x with the same CPU. ctypes drops the GIL for each call, so reading threads and the
decoder's ``zlib`` run on both cores. The PyPI ``libnfs`` bindings (SWIG, 2016) hold the GIL
and return a new ``bytearray`` per read: 0.1-0.25x, not used.

Only reads go through here (a file opened for a copy or a scan); listing, ``stat``, the
export list and the error messages stay with ``nfs-rs`` (:mod:`plugins.ova.share`). A libnfs
context is not thread-safe: each concurrent read borrows one of the file's contexts (one TCP
connection each), made on demand. A lost connection is made again, as a hard mount would
retry, until ``retry_seconds`` have passed; the caller maps what is left to a message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
import time
from typing import Any

SONAME = "libnfs.so.13"  # libnfs 4.x (Debian 12): nfs_pread(nfs, fh, offset, count, buf)
MAX_CONTEXTS = 8  # connections per open file: more reading threads wait for one

_lib: Any = None
_lib_lock = threading.Lock()
_lib_tried = False


def library() -> Any:
    """The loaded libnfs, or None where it is not installed (reads then go through nfs-rs)."""
    global _lib, _lib_tried
    with _lib_lock:
        if _lib_tried:
            return _lib
        _lib_tried = True
        try:
            lib = ctypes.CDLL(SONAME, use_errno=True)
        except OSError:
            return None
        vp, c64, cint, cstr = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p
        lib.nfs_init_context.restype = vp
        lib.nfs_init_context.argtypes = []
        lib.nfs_destroy_context.argtypes = [vp]
        lib.nfs_destroy_context.restype = None
        lib.nfs_set_timeout.argtypes = [vp, cint]
        lib.nfs_set_timeout.restype = None
        lib.nfs_set_autoreconnect.argtypes = [vp, cint]
        lib.nfs_set_autoreconnect.restype = None
        lib.nfs_mount.argtypes = [vp, cstr, cstr]
        lib.nfs_mount.restype = cint
        lib.nfs_open.argtypes = [vp, cstr, cint, ctypes.POINTER(vp)]
        lib.nfs_open.restype = cint
        lib.nfs_close.argtypes = [vp, vp]
        lib.nfs_close.restype = cint
        lib.nfs_pread.argtypes = [vp, vp, c64, c64, vp]
        lib.nfs_pread.restype = cint
        lib.nfs_get_readmax.argtypes = [vp]
        lib.nfs_get_readmax.restype = c64
        lib.nfs_get_error.argtypes = [vp]
        lib.nfs_get_error.restype = cstr
        _lib = lib
        return _lib


def _error(code: int, message: str) -> OSError:
    """An ``OSError`` of the right subclass for libnfs's ``-errno`` (or a mount failure)."""
    code = abs(code)
    if code in (errno.EACCES, errno.EPERM) or "ACCES" in message or "PERM" in message:
        return PermissionError(errno.EACCES, message)
    if code in (errno.ENOENT, errno.ESTALE) or "NOENT" in message:
        return FileNotFoundError(errno.ENOENT, message)
    return ConnectionError(code or errno.EIO, message)


class _Context:
    """One libnfs context: a connection, the mount, the file's handle."""

    def __init__(self, lib: Any, host: str, export: str, path: str, timeout_ms: int) -> None:
        self.lib = lib
        self.ctx = lib.nfs_init_context()
        if not self.ctx:
            raise ConnectionError(errno.ENOMEM, "libnfs: no context")
        self.fh = ctypes.c_void_p()
        try:
            lib.nfs_set_timeout(self.ctx, timeout_ms)
            lib.nfs_set_autoreconnect(self.ctx, 0)  # a lost connection fails the call: we retry
            rc = lib.nfs_mount(self.ctx, host.encode(), export.encode())
            if rc < 0:
                raise _error(rc, self._message("mount", rc))
            rc = lib.nfs_open(self.ctx, path.encode(), os.O_RDONLY, ctypes.byref(self.fh))
            if rc < 0:
                raise _error(rc, self._message("open", rc))
            self.readmax = int(lib.nfs_get_readmax(self.ctx)) or 1024 * 1024
        except BaseException:
            self.close()
            raise

    def _message(self, what: str, rc: int) -> str:
        text = self.lib.nfs_get_error(self.ctx) or b""
        return f"libnfs {what}: {text.decode(errors='replace') or os.strerror(-rc)}"

    def pread(self, offset: int, count: int, address: int) -> int:
        rc = int(self.lib.nfs_pread(self.ctx, self.fh, offset, count, address))
        if rc < 0:
            raise _error(rc, self._message("read", rc))
        return rc

    def close(self) -> None:
        if self.ctx:
            if self.fh:
                self.lib.nfs_close(self.ctx, self.fh)
                self.fh = ctypes.c_void_p()
            self.lib.nfs_destroy_context(self.ctx)
            self.ctx = None


class LibnfsFile:
    """A file on a share read at offsets with libnfs (thread-safe; see the module docstring).

    Opening connects once, so a file that cannot be opened fails here. ``readinto`` raises
    ``PermissionError``, ``FileNotFoundError`` (the file vanished) or ``ConnectionError`` (the
    server stayed away for ``retry_seconds``)."""

    def __init__(
        self,
        host: str,
        export: str,
        path: str,
        size: int,
        *,
        timeout_seconds: float = 60.0,
        retry_seconds: float = 60.0,
    ) -> None:
        lib = library()
        if lib is None:
            raise ImportError(f"{SONAME} is not installed")
        self._lib = lib
        self._where = (host, export, "/" + path.lstrip("/"), int(timeout_seconds * 1000))
        self._retry = retry_seconds
        self.size = size
        self._lock = threading.Condition()
        self._free: list[_Context] = [self._connect()]
        self._count = 1
        self._closed = False

    def _connect(self) -> _Context:
        return _Context(self._lib, *self._where)

    def _borrow(self) -> _Context:
        with self._lock:
            while True:
                if self._closed:
                    raise ValueError("read of a closed file")
                if self._free:
                    return self._free.pop()
                if self._count < MAX_CONTEXTS:
                    self._count += 1
                    break
                self._lock.wait()
        try:
            return self._connect()
        except BaseException:
            self._give_back(None)
            raise

    def _give_back(self, ctx: _Context | None) -> None:
        with self._lock:
            if ctx is None:
                self._count -= 1
            elif self._closed:
                ctx.close()
            else:
                self._free.append(ctx)
            self._lock.notify()

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` from ``offset`` in reads of the server's ``rtmax`` (libnfs's zero-copy
        size); returns how many bytes (short only at end of file)."""
        view = memoryview(buf).cast("B")
        if not len(view):
            return 0
        address = ctypes.addressof((ctypes.c_char * len(view)).from_buffer(view))
        ctx: _Context | None = self._borrow()
        done = 0
        deadline = 0.0
        pause = 0.1
        try:
            while done < len(view):
                assert ctx is not None
                count = min(ctx.readmax, len(view) - done)
                try:
                    n = ctx.pread(offset + done, count, address + done)
                except ConnectionError:
                    # the server went away: connect again (a hard mount's retry), from the
                    # same offset, until retry_seconds have passed without a read
                    ctx.close()
                    ctx = None
                    now = time.monotonic()
                    deadline = deadline or now + self._retry
                    while ctx is None:
                        try:
                            ctx = self._connect()
                        except ConnectionError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(pause)
                            pause = min(pause * 2, 2.0)
                    continue
                deadline, pause = 0.0, 0.1
                done += n
                if n < count:
                    break
        except BaseException:
            if ctx is not None:
                ctx.close()
            self._give_back(None)
            raise
        self._give_back(ctx)
        return done

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
            self._lock.notify_all()
        for ctx in free:
            ctx.close()
