"""Where an OVA provider's files live: a local folder or an NFS share, behind one small interface.

The OVA reader (tar headers, OVF, manifest digests) and the disk reader (a sparse VMDK decoded
in process, :mod:`plugins.ova.sparse`) ask a :class:`Folder` for bytes and never care which one
it is: :class:`LocalFolder` reads with ``os.preadv``; :class:`NfsFolder` speaks NFSv3 itself
(``nfs-rs``, AUTH_SYS, in user space; a file's bytes with libnfs where it is installed, as fast
as ``nfs-cat``: :mod:`plugins.ova.libnfs`), so neither the reconciler's pod nor a transfer Job's
needs a mount, privileges or an NFS client package. For a VMDK the in-process decoder does not read
(flat, or a layout it does not know), the folder names the qemu block node that reads the file:
qemu's ``file`` driver locally, its ``nfs`` driver (libnfs, user space too) on a share.

Provider URLs: a path or ``file://`` URL is local; Forklift's ``<server>:/<export>`` and
``nfs://<server>/<export>`` name a share (the whole path is the export: a sub-folder of an export
is reached by naming it as the export, as NFSv3 servers allow).
"""

from __future__ import annotations

import os
import stat as statmod
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from plugins.ova import libnfs
from reconciler.sources import SourceError

# reads without libnfs (plugins.ova.libnfs), through nfs-rs: pieces of this size, one after the
# other. nfs-rs zero-fills and copies every reply (profiled: a third of its CPU) and costs ~0.1 ms
# of CPU per call; measured against ganesha on 127.0.0.1 (256 MiB, busy 2-core machine): 512 KiB
# to 2 MiB pieces 0.5-0.9x nfs-cat, 4 MiB (its max_read) or more 0.35-0.6x; AsyncClient with 8-16
# reads in flight and more threads slower and costlier; libnfs 1.0x (the README's figures)
NFS_PIECE = 512 * 1024
QEMU_NFS_READAHEAD = 1024 * 1024  # qemu's nfs driver maximum: grain reads come in batches


@dataclass(frozen=True)
class Entry:
    """One name in a folder: what a scan needs to decide whether it must read it again."""

    path: str  # relative to the provider's folder, posix separators
    size: int
    mtime_ns: int
    is_dir: bool


class RandomFile(Protocol):
    """An open file read at offsets (thread-safe), never through a cursor."""

    size: int

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int: ...

    def close(self) -> None: ...


class Folder(Protocol):
    """The provider's folder: local or on a share (see the module docstring)."""

    where: str  # how messages name the folder: "/srv/ova", "NFS share 10.0.0.1:/ova"
    local: bool  # a local folder (tests and the demo use its Path)

    def display(self, rel: str) -> str: ...

    def stat(self, rel: str) -> Entry: ...

    def listdir(self, rel: str) -> list[Entry]: ...

    def open(self, rel: str) -> RandomFile: ...

    def qemu_file(self, rel: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


def read_at(f: RandomFile, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` (short only at end of file)."""
    buf = bytearray(max(0, min(length, f.size - offset)))
    n = f.readinto(offset, buf) if buf else 0
    return bytes(buf[:n])


class FileObject:
    """A read-only, seekable file object over a :class:`RandomFile` (for :mod:`tarfile`)."""

    def __init__(self, f: RandomFile) -> None:
        self._f = f
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._f.size - self._pos
        data = read_at(self._f, self._pos, size)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._f.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._f.close()


# -- local ---------------------------------------------------------------------------


def open_local(path: Path) -> RandomFile:
    """A file on this machine, read at offsets (what :meth:`LocalFolder.open` gives)."""
    return _LocalFile(path)


class _LocalFile:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.size = os.fstat(self._fd).st_size

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        view = memoryview(buf).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n == 0:
                break
            done += n
        return done

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalFolder:
    """A folder on this machine (the demo, the local target, tests)."""

    local = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def _full(self, rel: str) -> Path:
        return self.path / rel if rel else self.path

    def display(self, rel: str) -> str:
        return str(self._full(rel))

    def stat(self, rel: str) -> Entry:
        st = self._full(rel).stat()
        return Entry(rel, st.st_size, st.st_mtime_ns, statmod.S_ISDIR(st.st_mode))

    def listdir(self, rel: str) -> list[Entry]:
        out = []
        with os.scandir(self._full(rel)) as it:
            for d in it:
                try:
                    st = d.stat()  # a symlinked OVA counts as a file (the convert tests use one)
                    is_dir = d.is_dir(follow_symlinks=False)  # never walk into a link's loop
                except FileNotFoundError:
                    continue
                child = f"{rel}/{d.name}" if rel else d.name
                out.append(Entry(child, st.st_size, st.st_mtime_ns, is_dir))
        return out

    def open(self, rel: str) -> RandomFile:
        return _LocalFile(self._full(rel))

    def qemu_file(self, rel: str) -> dict[str, Any]:
        return {"driver": "file", "filename": str(self._full(rel))}

    def close(self) -> None:
        pass


# -- NFS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NfsLocation:
    """A share as a provider names it: the server and the exported path."""

    host: str
    export: str  # absolute, no trailing slash (except "/")
    port: int | None = None

    @property
    def forklift(self) -> str:
        return f"{self.host}:{self.export}"

    def url(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"nfs://{self.host}{port}{self.export}"


def parse_nfs(url: str) -> NfsLocation | None:
    """The share ``url`` names (``host:/path`` or ``nfs://host[:port]/path``); None if local."""
    if url.startswith("nfs://"):
        parsed = urlparse(url)
        if not parsed.hostname:
            raise SourceError(f"OVA provider url {url!r}: no NFS server in the URL")
        path = unquote(parsed.path) or "/"
        return NfsLocation(parsed.hostname, _clean(path), parsed.port)
    if "://" in url or url.startswith(("/", ".", "~")):
        return None
    host, sep, path = url.partition(":")
    if sep and host and path.startswith("/"):
        return NfsLocation(host.strip("[]"), _clean(path))
    return None


def _clean(path: str) -> str:
    p = str(PurePosixPath("/" + path.lstrip("/")))
    return p


def local_path(url: str) -> Path:
    """The local folder ``url`` names (a path or a ``file://`` URL)."""
    if "://" in url:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise SourceError(
                f"OVA provider url {url!r}: use a local folder, a file:// URL, an NFS share as "
                "<server>:/<export> or nfs://<server>/<export>"
            )
        return Path(unquote(parsed.path))
    return Path(url).expanduser()


def _nfs() -> Any:
    try:
        import nfs_rs
    except ImportError as e:  # pragma: no cover - the extra is part of every install we make
        raise SourceError(
            "OVA provider on an NFS share: the NFS client is not installed "
            "(pip install 'mtv-gitops[nfs]')"
        ) from e
    return nfs_rs


class _NfsFile:
    def __init__(self, folder: NfsFolder, rel: str, handle: Any, size: int) -> None:
        self._folder = folder
        self._rel = rel
        self._handle = handle
        self.size = size

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Fill ``buf`` with ``NFS_PIECE`` reads one after the other (see ``NFS_PIECE``)."""
        view = memoryview(buf).cast("B")
        done = 0
        try:
            while done < len(view):
                piece = view[done : done + NFS_PIECE]
                n = int(self._handle.readinto_at(piece, offset + done))
                done += n
                if n < len(piece):
                    break
        except Exception as e:  # noqa: BLE001 - nfs_rs errors become messages about the share
            raise self._folder.failure(e, self._rel) from e
        return done

    def close(self) -> None:
        try:
            self._handle.close()
        except Exception:  # noqa: BLE001 - a read-only handle has nothing to flush
            pass


class _LibnfsFile:
    """A :class:`plugins.ova.libnfs.LibnfsFile` whose failures name the share and the file."""

    def __init__(self, folder: NfsFolder, rel: str, f: libnfs.LibnfsFile) -> None:
        self._folder = folder
        self._rel = rel
        self._f = f
        self.size = f.size

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        try:
            return self._f.readinto(offset, buf)
        except OSError as e:
            raise self._folder.failure(e, self._rel) from e

    def close(self) -> None:
        self._f.close()


class NfsFolder:
    """An NFS share read in user space with ``nfs-rs`` (NFSv3, AUTH_SYS)."""

    local = False

    def __init__(
        self, location: NfsLocation, provider: str = "", *, use_libnfs: bool = True
    ) -> None:
        self.location = location
        self.provider = provider
        # file reads through libnfs where it is installed (plugins.ova.libnfs); a share on a
        # fixed port (nfs://host:port/...) is read with nfs-rs: libnfs 4 asks the portmapper
        self.use_libnfs = use_libnfs and location.port is None and libnfs.library() is not None
        self.where = f"NFS share {location.forklift}"
        self._lock = threading.Lock()
        self._client: Any = None
        self._connect()

    def _who(self) -> str:
        return f"OVA provider {self.provider}: " if self.provider else ""

    def _connect(self) -> Any:
        nfs_rs = _nfs()
        try:
            self._client = nfs_rs.Client.connect(
                self.location.url() + "?version=3",
                connect_timeout=10,
                operation_timeout=60,
                # only root may bind a port below 1024; a non-root pod needs the share to
                # accept others (knfsd's "insecure"; ganesha's default)
                noresvport=os.geteuid() != 0,
            )
        except nfs_rs.NfsMountError as e:
            raise SourceError(self._not_exported(e)) from e
        except Exception as e:  # noqa: BLE001 - every other failure is reaching the server
            raise SourceError(self._unreachable(e)) from e
        return self._client

    def _client_now(self) -> Any:
        with self._lock:
            if self._client is None or self._client.closed:
                return self._connect()
            return self._client

    def _unreachable(self, e: BaseException) -> str:
        return (
            f"{self._who()}cannot reach the {self.where}: {e}; check that the server runs, "
            "that this pod or machine may reach it (TCP 111 and 2049) and that spec.url names it"
        )

    def _not_exported(self, e: BaseException) -> str:
        nfs_rs = _nfs()
        try:
            exports = [x.path for x in nfs_rs.list_exports(f"nfs://{self.location.host}/")]
        except Exception:  # noqa: BLE001 - the listing is a hint, the mount error is the news
            exports = []
        offered = ", ".join(exports) if exports else "none that this client may see"
        return (
            f"{self._who()}the server {self.location.host} does not export "
            f"{self.location.export} to us ({e}); it offers: {offered}"
        )

    def failure(self, e: BaseException, rel: str) -> SourceError:
        """The message a user can act on for a failed operation on ``rel``."""
        nfs_rs = _nfs()
        name = self.display(rel)
        if isinstance(e, PermissionError | nfs_rs.NfsPermissionError):
            return SourceError(
                f"{self._who()}permission denied reading {name} on the {self.where}: the server "
                "probably squashes root (root_squash); the OVA files and their folders must be "
                "world-readable (as Forklift also needs)"
            )
        if isinstance(e, FileNotFoundError | nfs_rs.NfsNotFoundError):
            return SourceError(f"{self._who()}{name} vanished from the {self.where}")
        if isinstance(e, ConnectionError | TimeoutError | nfs_rs.NfsConnectionError):
            with self._lock:
                self._drop()
            return SourceError(self._unreachable(e))
        return SourceError(f"{self._who()}reading {name} on the {self.where} failed: {e}")

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - a dead connection may not close cleanly
                pass

    def _call(self, rel: str, fn: Any) -> Any:
        try:
            return fn(self._client_now())
        except SourceError:
            raise
        except Exception as e:  # noqa: BLE001 - mapped to a message about the share
            raise self.failure(e, rel) from e

    def display(self, rel: str) -> str:
        path = f"{self.location.export.rstrip('/')}/{rel}" if rel else self.location.export
        return f"{self.location.host}:{path}"

    @staticmethod
    def _entry(rel: str, info: Any) -> Entry:
        nfs_rs = _nfs()
        return Entry(rel, int(info.size), int(info.mtime), info.type == nfs_rs.FileType.DIRECTORY)

    def stat(self, rel: str) -> Entry:
        return self._entry(rel, self._call(rel, lambda c: c.stat(rel or ".")))

    def listdir(self, rel: str) -> list[Entry]:
        def scan(c: Any) -> list[Entry]:
            out = []
            for d in c.scandir(rel or "."):
                if d.name in (".", ".."):
                    continue
                out.append(self._entry(f"{rel}/{d.name}" if rel else d.name, d.info))
            return out

        return self._call(rel, scan)

    def open(self, rel: str) -> RandomFile:
        """The file at ``rel``, read with libnfs where it is installed (``plugins.ova.libnfs``:
        as fast as ``nfs-cat``), else with ``nfs-rs``; opening it checks that it can be read."""
        size = self.stat(rel).size
        if self.use_libnfs:
            try:
                return _LibnfsFile(
                    self,
                    rel,
                    libnfs.LibnfsFile(self.location.host, self.location.export, rel, size),
                )
            except OSError as e:
                raise self.failure(e, rel) from e

        def do(c: Any) -> _NfsFile:
            return _NfsFile(self, rel, c.open(rel, "rb"), size)

        return self._call(rel, do)

    def qemu_file(self, rel: str) -> dict[str, Any]:
        """qemu's own NFS client (libnfs, in qemu-nbd's process) reads the VMDK in place."""
        server: dict[str, Any] = {"type": "inet", "host": self.location.host}
        if self.location.port:
            server["port"] = str(self.location.port)
        return {
            "driver": "nfs",
            "server": server,
            "path": f"{self.location.export.rstrip('/')}/{rel}",
            "readahead-size": QEMU_NFS_READAHEAD,
        }

    def close(self) -> None:
        with self._lock:
            self._drop()


def open_folder(url: str, provider: str = "") -> Folder:
    """The folder a provider's ``url`` names; raises :class:`SourceError` a user can act on."""
    location = parse_nfs(url)
    if location is not None:
        return NfsFolder(location, provider)
    path = local_path(url)
    if not path.is_dir():
        raise SourceError(f"OVA folder {path} (from url {url!r}) does not exist")
    return LocalFolder(path)
