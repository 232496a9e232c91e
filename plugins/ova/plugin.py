"""The OVA source: a folder of ``.ova`` files served as a provider (the embedded default).

The folder is local or an NFS share (``<server>:/<export>`` as Forklift names it, or
``nfs://<server>/<export>``), read through :mod:`plugins.ova.share`: one code path for both.
As in Forklift (``inventory/scan.go``), a VM is an ``.ova`` archive or a loose ``.ovf``
descriptor whose disk files (and ``.mf`` manifest, if any) lie next to it: an OVA unpacked in
place. Both are read the same way; a loose disk is a file of its own instead of a tar member.

Identity follows Forklift's OVA provider server (``cmd/ova-provider-server``) where it can:

* VM id: the VirtualSystem ``ovf:id`` when it is a valid UUID (as Forklift does); otherwise,
  and for a UUID already used by another OVA, ``uuid5("ova:<path relative to folder>#<ovf:id>")``
  (the path of the ``.ova``, or of the ``.ovf`` for a loose one, as Forklift's VM path)
  so the id survives rescans and restarts (Forklift hashes its in-memory record instead).
* Network: one per distinct OVF network name, id ``uuid5("ova-network:<name>")`` (Forklift
  also derives it from the name alone, so equal names across OVAs are one network).
* Disk: id ``uuid5("ova-disk:<relative path>/<file href>")`` (Forklift keys it on OVA path
  and file name too); ``Disk.key`` is the OVF ``diskId`` (``vmdisk1``).
* Storage: as Forklift, one ``Default`` storage (id ``default``) plus one storage per disk
  whose id is the disk id; ``Disk.storage`` is that per-disk id, so a StorageMap entry can
  name a single disk.

Disks are read in place (see :mod:`plugins.ova.reader`); an OVA is never extracted.
"""

from __future__ import annotations

import logging
import os
import tarfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins import bundled
from plugins.ova.manifest import Digest, check_member, parse_manifest
from plugins.ova.ovf import OvfDisk, OvfEnvelope, OvfVirtualSystem, parse_ovf
from plugins.ova.reader import VmdkReader, open_member
from plugins.ova.share import Entry, FileObject, Folder, LocalFolder, local_path, open_folder
from plugins.ova.sparse import SparseVmdkReader
from reconciler.hookspecs import hookimpl
from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.sources import Capabilities, DemoSource, Rules, SourceError
from reconciler.transfer.extents import Extent

log = logging.getLogger(__name__)

PROVIDER_TYPE = "ova"
# what open_member gives: the in-process sparse decoder, or qemu for any other VMDK
OvaDiskReader = SparseVmdkReader | VmdkReader
DEFAULT_STORAGE_ID = "default"
DEFAULT_STORAGE_NAME = "Default"
MAX_OVF_SIZE = 16 * 1024 * 1024
_NS = uuid.UUID("5c0b2d3e-6f8a-4c1e-9d6b-0a7e4f3b2c19")  # mtv-gitops OVA id namespace


def network_id(name: str) -> str:
    """Stable id of an OVF network, from its name alone."""
    return str(uuid.uuid5(_NS, f"ova-network:{name}"))


def disk_id(rel_path: str, href: str) -> str:
    """Stable id of a disk, from the OVA's path relative to the folder and the file name."""
    return str(uuid.uuid5(_NS, f"ova-disk:{rel_path}/{href}"))


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _concern(label: str, assessment: str, category: str = "Critical") -> dict[str, str]:
    return {"category": category, "label": label, "assessment": assessment}


@dataclass(frozen=True)
class _Member:
    """A disk's bytes: a tar member of the OVA, or a loose file next to an ``.ovf``."""

    name: str
    offset: int
    size: int
    rel: str = ""  # the file holding it, relative to the folder ("" until the scan sets it)
    key: tuple[int, int] = (-1, -1)  # that file's size and mtime when scanned


@dataclass
class _DiskEntry:
    ovf: OvfDisk
    id: str
    member: _Member | None
    problem: str = ""  # why the disk cannot be read, for open_disk
    digest: Digest | None = None  # what the OVA's manifest says the member's bytes hash to
    mf_name: str = ""


@dataclass(frozen=True)
class _Archive:
    """What a scan learnt of the tar besides the OVF: its files, links and manifest."""

    members: dict[str, _Member]
    links: dict[str, str]  # name -> "a symbolic link to x" / "a hard link to x"
    digests: dict[str, Digest]
    mf_name: str
    size: int | None  # the OVA's; None for a loose OVF (each disk is a file of its own)


@dataclass
class _VmEntry:
    vm: VM
    ova: str  # how messages and the validation input name the file
    rel: str
    source: str = "Unknown"
    system: OvfVirtualSystem | None = None
    disks: dict[str, _DiskEntry] = field(default_factory=dict)


@dataclass
class _OvaScan:
    key: tuple[int, ...]  # the OVA's size and mtime; a loose OVF's, then each file's it names
    vms: list[_VmEntry]
    networks: dict[str, str]  # id -> name
    problem: str = ""
    files: tuple[str, ...] = ()  # a loose OVF: the files next to it that its key covers


class _ZeroReader:
    """The content of an OVF disk that has no file: a blank disk of ``capacity`` bytes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def extents(self) -> Iterator[Extent]:
        return iter([Extent(0, self.size, True)] if self.size else [])

    def read(self, offset: int, length: int) -> bytes:
        return bytes(max(0, min(length, self.size - offset)))

    def close(self) -> None:
        pass


class _Watched:
    """A disk reader over an OVA that must stay as it was scanned while it is copied.

    Before each read (one stat: a GETATTR on a share) the OVA's size and time are compared
    with the scan's: a file that vanished or changed fails the read, so the VM fails and its
    partial target disk is never reported done. A read that fails for another reason says
    so too when the file or the share is the cause (a share that is unreachable)."""

    def __init__(
        self, reader: OvaDiskReader, share: Folder, rel: str, key: tuple[int, int], what: str
    ) -> None:
        self._reader = reader
        self._share = share
        self._rel = rel
        self._key = key
        self._what = what

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    def _check(self) -> None:
        name = self._share.display(self._rel)
        try:
            st = self._share.stat(self._rel)
        except FileNotFoundError as e:
            raise SourceError(f"{name} vanished during the copy of {self._what}") from e
        except SourceError as e:
            if "vanished" in str(e):
                raise SourceError(f"{e} during the copy of {self._what}") from e
            raise
        if (st.size, st.mtime_ns) != self._key:
            raise SourceError(
                f"{name} changed during the copy of {self._what} (size {self._key[0]} -> "
                f"{st.size} bytes, or a new modification time): the copy cannot be trusted; "
                "leave the OVA alone while it is migrated and start a new Migration"
            )

    def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        self._check()
        try:
            return self._reader.readinto(offset, buf)
        except SourceError:
            self._check()  # the file or the share is the cause: say that instead
            raise

    def read(self, offset: int, length: int) -> bytes:
        self._check()
        try:
            return self._reader.read(offset, length)
        except SourceError:
            self._check()
            raise

    def __enter__(self) -> _Watched:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()


class OvaConnection:
    """A folder of OVA files (local or on an NFS share) as a
    :class:`reconciler.sources.SourceConnection`.

    Inventory is rescanned on every call, but each OVA is parsed again only when its size or
    modification time changed, and a folder is listed again only when its own modification
    time changed (a share is polled with one GETATTR per folder and per OVA, no full rescan).
    """

    def __init__(self, folder: str | Path | Folder, *, streams: int = 4) -> None:
        if isinstance(folder, str | Path):
            path = Path(folder)
            if not path.is_dir():
                raise SourceError(f"OVA folder {path} does not exist or is not a folder")
            folder = LocalFolder(path)
        self.share: Folder = folder
        self.folder = folder.path if isinstance(folder, LocalFolder) else folder.where
        self.streams = streams
        self._lock = threading.Lock()
        self._cache: dict[str, _OvaScan] = {}
        self._listings: dict[str, tuple[int, list[Entry]]] = {}  # folder -> (mtime, entries)
        self._vms: dict[str, _VmEntry] = {}
        self._networks: dict[str, str] = {}
        self._readers: list[OvaDiskReader] = []

    # -- scanning --------------------------------------------------------------------

    def _listing(self, folder: Entry) -> list[Entry]:
        """A folder's entries, listed again only when the folder's mtime moved."""
        cached = self._listings.get(folder.path)
        if cached is not None and cached[0] == folder.mtime_ns:
            return cached[1]
        entries = self.share.listdir(folder.path)
        self._listings[folder.path] = (folder.mtime_ns, entries)
        return entries

    def _ova_files(self) -> list[Entry]:
        found: list[Entry] = []
        seen: set[str] = set()
        todo = [self.share.stat("")]
        while todo:
            folder = todo.pop()
            seen.add(folder.path)
            for e in self._listing(folder):
                name = e.path.rsplit("/", 1)[-1]
                if e.is_dir:
                    try:
                        todo.append(self.share.stat(e.path))  # its mtime now, not the listing's
                    except (FileNotFoundError, SourceError):
                        continue
                elif name.lower().endswith((".ova", ".ovf")) and not name.startswith("."):
                    found.append(e)
        for gone in set(self._listings) - seen:
            del self._listings[gone]
        return sorted(found, key=lambda e: e.path)

    def _stats(self, files: tuple[str, ...]) -> tuple[int, ...]:
        """Size and mtime of each file (-1, -1 for one that is not there): one GETATTR each."""
        out: list[int] = []
        for rel in files:
            try:
                st = self.share.stat(rel)
                out += [st.size, st.mtime_ns]
            except (FileNotFoundError, SourceError):
                out += [-1, -1]
        return tuple(out)

    def _scan_one(self, entry: Entry) -> _OvaScan:
        st = self.share.stat(entry.path)  # a file rewritten in place keeps its folder's mtime
        key: tuple[int, ...] = (st.size, st.mtime_ns)
        rel = entry.path
        cached = self._cache.get(rel)
        if cached is not None and cached.files:  # a loose OVF: its disks may change alone
            key += self._stats(cached.files)
        if cached is not None and cached.key == key:
            return cached
        loose = rel.lower().endswith(".ovf")
        try:
            if loose:
                scan = self._read_loose_ovf(rel, (st.size, st.mtime_ns))
            else:
                scan = self._read_ova(rel, (st.size, st.mtime_ns), st.size)
        except SourceError as e:
            log.warning("%s", e)
            scan = self._broken(rel, key, str(e))
        self._cache[rel] = scan
        return scan

    def _broken(self, rel: str, key: tuple[int, ...], problem: str) -> _OvaScan:
        """An OVA that cannot be read still shows up, as a VM that validation will block."""
        vm = VM(
            id=str(uuid.uuid5(_NS, f"ova:{rel}#")),
            name=Path(rel).stem,
            power_state="Off",
            concerns=(_concern("Invalid OVA", problem),),
        )
        return _OvaScan(key, [_VmEntry(vm=vm, ova=self.share.display(rel), rel=rel)], {}, problem)

    def _read_ova(self, rel: str, key: tuple[int, int], file_size: int) -> _OvaScan:
        mf_text = ""
        path = self.share.display(rel)
        f = self.share.open(rel)
        try:
            with tarfile.open(fileobj=FileObject(f), mode="r:") as tar:  # type: ignore[arg-type]
                members = tar.getmembers()
                ovf_member = next(
                    (m for m in members if m.isfile() and m.name.lower().endswith(".ovf")), None
                )
                if ovf_member is None:
                    raise SourceError(f"{path}: no .ovf descriptor in the archive")
                if ovf_member.size > MAX_OVF_SIZE:
                    raise SourceError(f"{path}: {ovf_member.name} is implausibly large")
                fobj = tar.extractfile(ovf_member)
                data = fobj.read() if fobj is not None else b""
                mf_member = next(
                    (m for m in members if m.isfile() and m.name.lower().endswith(".mf")), None
                )
                if mf_member is not None and mf_member.size <= MAX_OVF_SIZE:
                    mobj = tar.extractfile(mf_member)
                    mf_text = mobj.read().decode("utf-8", "replace") if mobj else ""
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceError(f"{path}: not a readable OVA (tar) archive: {e}") from e
        finally:
            f.close()
        if len(data) != ovf_member.size:
            raise SourceError(f"{path}: {ovf_member.name} is truncated")
        by_name: dict[str, _Member] = {}
        links: dict[str, str] = {}
        for m in members:
            names = (m.name, os.path.basename(m.name))
            if m.isfile():
                for n in names:
                    by_name.setdefault(n, _Member(m.name, m.offset_data, m.size, rel, key))
            elif m.issym() or m.islnk():
                what = "a symbolic link" if m.issym() else "a hard link"
                for n in names:
                    links.setdefault(n, f"{what} to {m.linkname}")
        mf_name = mf_member.name if mf_member is not None else ""
        return self._envelope(
            rel, key, data, ovf_member.name, mf_text, mf_name, by_name, links, file_size
        )

    def _read_loose_ovf(self, rel: str, key: tuple[int, int]) -> _OvaScan:
        """A ``.ovf`` with its disk files (and ``<name>.mf``, if any) next to it."""
        path = self.share.display(rel)
        folder, _, ovf_name = rel.rpartition("/")
        size = self.share.stat(rel).size
        if size > MAX_OVF_SIZE:
            raise SourceError(f"{path}: implausibly large for an OVF descriptor")
        data = self._read_file(rel, size)
        siblings = {
            e.path.rsplit("/", 1)[-1]: e for e in self.share.listdir(folder) if not e.is_dir
        }
        stem = ovf_name[: -len(".ovf")]
        mf = next((n for n in siblings if n.lower() == f"{stem.lower()}.mf"), "")
        mf_text = ""
        if mf and siblings[mf].size <= MAX_OVF_SIZE:
            mf_text = self._read_file(siblings[mf].path, siblings[mf].size).decode(
                "utf-8", "replace"
            )
        envelope = parse_ovf(data, path)
        members: dict[str, _Member] = {}
        files: list[str] = []
        for f in envelope.files:
            href = f.href
            # a file in this folder or below it; a URL or a path out of it is no file of ours
            parts = href.split("/")
            if "://" in href or href.startswith("/") or ".." in parts or "" in parts:
                continue
            child = f"{folder}/{href}" if folder else href
            files.append(child)
            try:
                st = self.share.stat(child)
            except (FileNotFoundError, SourceError):
                continue
            if not st.is_dir:
                members[href] = _Member(href, 0, st.size, child, (st.size, st.mtime_ns))
        if mf:
            files.append(siblings[mf].path)
        scan = self._envelope(rel, key, data, ovf_name, mf_text, mf, members, {}, None)
        scan.files = tuple(files)
        scan.key = key + self._stats(scan.files)
        return scan

    def _read_file(self, rel: str, size: int) -> bytes:
        f = self.share.open(rel)
        try:
            buf = bytearray(size)
            n = f.readinto(0, buf) if size else 0
        finally:
            f.close()
        if n != size:
            raise SourceError(f"{self.share.display(rel)} is truncated ({n} of {size} bytes)")
        return bytes(buf)

    def _envelope(
        self,
        rel: str,
        key: tuple[int, int],
        data: bytes,
        ovf_name: str,
        mf_text: str,
        mf_name: str,
        by_name: dict[str, _Member],
        links: dict[str, str],
        file_size: int | None,
    ) -> _OvaScan:
        """The scan of one OVF descriptor (from an archive or loose) and the disks it names."""
        path = self.share.display(rel)
        digests, unreadable = parse_manifest(mf_text)
        if unreadable:
            log.warning("%s: %s has lines that are not digests: %s", path, mf_name, unreadable)
        ovf_digest = digests.get(ovf_name) or digests.get(os.path.basename(ovf_name))
        if ovf_digest is not None and ovf_digest.of(data) != ovf_digest.hex:
            raise SourceError(
                f"{path}: {ovf_name} does not match its {ovf_digest.algo} digest in "
                f"{mf_name}: the OVA was damaged or edited after it was exported"
            )
        envelope = parse_ovf(data, path if file_size is None else f"{path}:{ovf_name}")
        archive = _Archive(by_name, links, digests, mf_name, file_size)
        networks = {network_id(n.name): n.name for n in envelope.networks}
        vms = [
            self._vm_entry(path, rel, envelope, system, index, archive, networks)
            for index, system in enumerate(envelope.systems)
        ]
        return _OvaScan(key, vms, networks)

    def _vm_entry(
        self,
        path: str,
        rel: str,
        envelope: OvfEnvelope,
        system: OvfVirtualSystem,
        index: int,
        archive: _Archive,
        networks: dict[str, str],
    ) -> _VmEntry:
        concerns: list[dict[str, str]] = []
        disks: list[Disk] = []
        entries: dict[str, _DiskEntry] = {}
        for d in system.disks:
            href = d.file.href if d.file else ""
            did = disk_id(rel, href or f"#{d.disk_id}")
            member = archive.members.get(href) if href else None
            problem = ""
            unsupported = ""
            if d.file and d.file.compression and d.file.compression != "identity":
                unsupported = f"is {d.file.compression}-compressed"
            elif d.file and d.file.chunk_size:
                unsupported = "is split into chunks"
            elif href and member is None and href in archive.links:
                unsupported = f"is {archive.links[href]} in the archive, not a file"
            if unsupported:
                problem = f"{path}: disk file {href} {unsupported}, which cannot be read in place"
                concerns.append(
                    _concern(
                        "Unsupported disk file",
                        f"{href} in {rel} {unsupported}; re-export the VM without "
                        "compression or chunking.",
                    )
                )
            elif href and member is None:
                where = "the archive" if archive.size is not None else "its folder"
                problem = f"{path}: disk file {href} is missing from {where}"
                concerns.append(
                    _concern(
                        "Disk file missing",
                        f"The OVF of {rel} references {href} for disk {d.disk_id}, "
                        f"but {where} does not contain it.",
                    )
                )
            elif member is not None:
                expected = d.file.size if d.file else None
                end = archive.size if archive.size is not None else member.size
                if member.offset + member.size > end or (
                    expected is not None and member.size < expected
                ):
                    have = min(member.size, max(0, end - member.offset))
                    want = expected if expected is not None else member.size
                    problem = f"{path}: disk file {href} is truncated ({have} of {want} bytes)"
                    concerns.append(
                        _concern(
                            "Disk file truncated",
                            f"{href} in {rel} holds {have} bytes, but {want} were expected; "
                            "the OVA is incomplete or damaged.",
                        )
                    )
            digest = None
            if member is not None:
                digest = archive.digests.get(member.name) or archive.digests.get(href)
            entries[d.disk_id] = _DiskEntry(d, did, member, problem, digest, archive.mf_name)
            disks.append(
                Disk(
                    key=d.disk_id,
                    capacity=d.capacity,
                    storage=did,
                    file=href,
                    format="vmdk" if href else "raw",
                    bus=d.bus or "scsi",
                )
            )
        nics = []
        for n in system.nics:
            if n.network and network_id(n.network) not in networks:
                networks[network_id(n.network)] = n.network  # used but not declared
            nics.append(
                Nic(
                    name=n.name,
                    network=network_id(n.network) if n.network else "",
                    mac=n.mac,
                    model=n.model.lower() or "e1000",
                )
            )
        vs_key = system.id or f"#{index}"
        vm_id = system.id if _is_uuid(system.id) else str(uuid.uuid5(_NS, f"ova:{rel}#{vs_key}"))
        vm = VM(
            id=vm_id,
            name=system.name,
            cpus=system.cpus,
            cores_per_socket=system.cores_per_socket,
            memory_mb=system.memory_mb,
            firmware=system.firmware,
            guest_os=system.os_type or system.os_description or system.os_id,
            power_state="Off",
            disks=tuple(disks),
            nics=tuple(nics),
            concerns=tuple(concerns),
        )
        return _VmEntry(vm, path, rel, envelope.source, system, entries)

    def _rescan(self) -> tuple[list[_VmEntry], dict[str, str]]:
        files = self._ova_files()
        for gone in set(self._cache) - {f.path for f in files}:
            del self._cache[gone]
        entries: list[_VmEntry] = []
        networks: dict[str, str] = {}
        for file in files:
            try:
                scan = self._scan_one(file)
            except FileNotFoundError:
                continue  # removed while scanning
            entries.extend(scan.vms)
            networks.update(scan.networks)
        seen: set[str] = set()
        vms: dict[str, _VmEntry] = {}
        for entry in entries:
            if entry.vm.id in seen:  # same UUID in two OVAs: fall back to the path-based id
                vs_key = (entry.system.id if entry.system else "") or "#dup"
                new_id = str(uuid.uuid5(_NS, f"ova:{entry.rel}#{vs_key}"))
                entry = _VmEntry(
                    VM(**{**entry.vm.__dict__, "id": new_id}),
                    entry.ova,
                    entry.rel,
                    entry.source,
                    entry.system,
                    entry.disks,
                )
            seen.add(entry.vm.id)
            vms[entry.vm.id] = entry
        self._vms = vms
        self._networks = networks
        return list(vms.values()), networks

    def _entry(self, vm_id: str) -> _VmEntry:
        with self._lock:
            entry = self._vms.get(vm_id)
            if entry is None:
                self._rescan()
                entry = self._vms.get(vm_id)
        if entry is None:
            raise SourceError(f"no VM with id {vm_id} in the OVA folder {self.folder}")
        return entry

    # -- SourceConnection ------------------------------------------------------------

    def inventory(self) -> Inventory:
        """Every VirtualSystem of every ``*.ova`` below the folder (recursive, sorted by path)."""
        with self._lock:
            entries, networks = self._rescan()
        storages = [Storage(DEFAULT_STORAGE_ID, DEFAULT_STORAGE_NAME)]
        for entry in entries:
            for d in entry.disks.values():
                storages.append(Storage(d.id, d.ovf.file.href if d.ovf.file else d.ovf.disk_id))
        return Inventory(
            vms=[e.vm for e in entries],
            networks=[Network(i, n) for i, n in sorted(networks.items(), key=lambda x: x[1])],
            storages=storages,
            default_storage=DEFAULT_STORAGE_ID,
        )

    def validation_input(self, vm_id: str) -> dict[str, Any]:
        """The VM in the shape Forklift's OVA inventory serves (what its ova rules read)."""
        entry = self._entry(vm_id)
        vm, system = entry.vm, entry.system
        config = system.config if system else {}

        def flag(key: str) -> bool:
            return config.get(key, "").lower() == "true"

        disks = []
        for d in vm.disks:
            de = entry.disks.get(d.key)
            ovf = de.ovf if de else None
            disks.append(
                {
                    "id": de.id if de else d.storage,
                    "name": d.file,
                    "file": d.file,
                    "filePath": str(entry.ova),
                    "capacity": d.capacity,
                    "capacityAllocationUnits": ovf.capacity_units if ovf else "byte",
                    "diskId": d.key,
                    "fileRef": ovf.file_ref if ovf else "",
                    "format": ovf.format if ovf else "",
                    "populatedSize": (ovf.populated_size or 0) if ovf else 0,
                    "bus": d.bus,
                }
            )
        nics = [
            {
                "name": n.name,
                "mac": n.mac,
                "model": n.model,
                "network": {"kind": "Network", "id": n.network},
                "config": [],
            }
            for n in vm.nics
        ]
        net_ids = list(dict.fromkeys(n.network for n in vm.nics if n.network))
        for nic in nics:
            nic["network"]["name"] = self._networks.get(nic["network"]["id"], "")
        storage_used = sum(de.member.size for de in entry.disks.values() if de.member)
        return {
            "id": vm.id,
            "name": vm.name,
            "uuid": vm.id,
            "path": entry.rel,
            "ovaPath": str(entry.ova),
            "ovaSource": entry.source,
            "osType": system.os_type if system else "",
            "guestId": system.os_type if system else "",
            "guestName": system.os_description if system else "",
            "firmware": vm.firmware,
            "powerState": vm.power_state,
            "cpuCount": vm.cpus,
            "coresPerSocket": vm.cores_per_socket,
            "cpuUnits": "hertz * 10^6",
            "memoryMB": vm.memory_mb,
            "memoryUnits": "byte * 2^20",
            "cpuAffinity": [],
            "cpuHotAddEnabled": flag("cpuHotAddEnabled"),
            "cpuHotRemoveEnabled": flag("cpuHotRemoveEnabled"),
            "memoryHotAddEnabled": flag("memoryHotAddEnabled"),
            "secureBoot": (
                flag("bootOptions.efiSecureBootEnabled") or flag("uefi.secureBoot.enabled")
            ),
            "faultToleranceEnabled": False,
            "balloonedMemory": 0,
            "ipAddress": "",
            "numaNodeAffinity": [],
            "storageUsed": storage_used,
            "changeTrackingEnabled": False,
            "devices": [{"kind": k} for k in (system.devices if system else ())],
            "disks": disks,
            "nics": nics,
            "networks": [
                {"kind": "Network", "id": i, "name": self._networks.get(i, "")} for i in net_ids
            ],
            "concerns": [],
        }

    def power_state(self, vm_id: str) -> str:
        """Always ``Off``: an OVA is an export on disk, nothing is running."""
        self._entry(vm_id)
        return "Off"

    def power_off(self, vm_id: str, timeout: float) -> None:
        """Nothing to do: an exported VM cannot be running, so it is already off."""
        self._entry(vm_id)

    def power_on(self, vm_id: str) -> None:
        """Nothing to do: there is no source hypervisor to start the VM on again."""
        self._entry(vm_id)

    def open_disk(self, vm_id: str, disk_key: str) -> _Watched | _ZeroReader:
        """A reader over the disk inside the OVA (no extraction); the caller closes it."""
        entry = self._entry(vm_id)
        de = entry.disks.get(disk_key)
        if de is None:
            raise SourceError(f"{entry.ova}: VM {entry.vm.name} has no disk {disk_key!r}")
        if de.problem:
            raise SourceError(de.problem)
        if de.member is None:
            return _ZeroReader(de.ovf.capacity)
        rel, key = de.member.rel, de.member.key  # the OVA, or a loose OVF's disk file
        shown = self.share.display(rel)
        now = self.share.stat(rel)
        if (now.size, now.mtime_ns) != key:
            raise SourceError(f"{shown} changed since it was scanned; the next pass reads it again")
        if de.digest is not None:
            wrong = check_member(
                self.share,
                rel,
                de.member.name,
                de.member.offset,
                de.member.size,
                de.digest,
                de.mf_name,
            )
            if wrong:
                raise SourceError(f"{entry.ova}: disk {disk_key} of VM {entry.vm.name}: {wrong}")
        reader = open_member(
            shown,
            de.member.offset,
            de.member.size,
            self.streams,
            member_name=de.member.name,
            file_node=self.share.qemu_file(rel),
            file=self.share.open(rel),
        )
        if reader.size > de.ovf.capacity:
            # the OVF is the VM's declared size: a disk image larger than that holds data the
            # VM never had room for (or the descriptor is wrong); neither can be copied safely
            reader.close()
            raise SourceError(
                f"{entry.ova}: disk {disk_key} of VM {entry.vm.name}: {de.member.name} holds "
                f"{reader.size} bytes, more than the {de.ovf.capacity} the OVF declares "
                "(ovf:capacity); fix the descriptor or export the VM again"
            )
        if reader.size < de.ovf.capacity:
            log.info(
                "%s: disk %s: %s holds %d bytes, the OVF declares %d: the target disk gets the "
                "declared size, its end reads as zeros",
                entry.ova, disk_key, de.member.name, reader.size, de.ovf.capacity,
            )  # fmt: skip
        with self._lock:
            self._readers = [r for r in self._readers if not r.closed]
            self._readers.append(reader)
        return _Watched(reader, self.share, rel, key, f"disk {disk_key} of VM {entry.vm.name}")

    def close(self) -> None:
        """Close every reader this connection opened that is still open."""
        with self._lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
        self.share.close()


def _folder_of(url: str) -> Path:
    """The local folder ``url`` names (kept for callers that only handle local folders)."""
    return local_path(url)


@hookimpl
def mtv_gitops_source_types() -> list[str]:
    """The OVA plugin answers for Provider ``spec.type: ova``."""
    return [PROVIDER_TYPE]


@hookimpl
def mtv_gitops_rules(provider_type: str) -> Rules | None:
    """Forklift's OVA rules, shipped in the top-level ``rules/ova/``."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Rules("io.konveyor.forklift.ova", bundled("rules", PROVIDER_TYPE))


@hookimpl
def mtv_gitops_capabilities(provider_type: str) -> Capabilities | None:
    """Files do not run: cold only; the exported guest still needs its drivers converted."""
    if provider_type != PROVIDER_TYPE:
        return None
    return Capabilities(warm=False, inflight_per_host=False, guest_conversion=True)


@hookimpl
def mtv_gitops_secret_keys(provider_type: str) -> list[str] | None:
    """A folder of files needs no credentials."""
    return [] if provider_type == PROVIDER_TYPE else None


@hookimpl
def mtv_gitops_demo(name: str, workspace: Path) -> DemoSource | None:
    """``mtv-gitops demo``: three VMs from generated OVA files (see :mod:`plugins.ova.demo`)."""
    if name != "cold":
        return None
    from plugins.ova.demo import OvaDemo

    return OvaDemo(workspace)


@hookimpl
def mtv_gitops_connect(
    provider_type: str, url: str, secret: dict[str, str], settings: dict[str, Any]
) -> OvaConnection | None:
    """Open the folder named by ``url`` (a path, a ``file://`` URL, or an NFS share as
    ``<server>:/<export>`` or ``nfs://<server>/<export>``); ``secret`` is unused."""
    if provider_type != PROVIDER_TYPE:
        return None
    if not url:
        raise SourceError("OVA provider has no url: set spec.url to the folder of OVA files")
    streams = int((settings or {}).get("streams", 4))
    return OvaConnection(open_folder(url), streams=streams)
