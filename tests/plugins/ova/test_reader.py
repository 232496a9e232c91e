"""VmdkReader against real OVAs: size, extents, byte-exact and parallel reads, clean failures."""

from __future__ import annotations

import os
import subprocess
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plugins.ova import reader as reader_module
from plugins.ova.factory import OvaInfo
from plugins.ova.reader import VmdkReader, merge_extents
from reconciler.sources import SourceError
from reconciler.transfer.digest import disk_digest_of_reader
from reconciler.transfer.extents import Extent

from .conftest import DISK1_WRITES, DISK2_WRITES, MiB, build_sample

pytestmark = pytest.mark.integration


def _member(ova: Path, name: str) -> tarfile.TarInfo:
    with tarfile.open(ova) as tar:
        return tar.getmember(name)


def _reader(info: OvaInfo, index: int, streams: int = 4, servers: int | None = None) -> VmdkReader:
    m = _member(info.path, info.disks[index].file)
    return VmdkReader(
        info.path, m.offset_data, m.size, streams, member_name=m.name, servers=servers
    )


def _qemu_nbd_pids(pattern: str) -> list[int]:
    """qemu-nbd processes whose command line mentions ``pattern`` (their socket folder)."""
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(pid) for pid in proc.stdout.split()]


def test_merge_extents_merges_and_covers() -> None:
    entries = [
        {"start": 0, "length": 10, "zero": False, "data": True},
        {"start": 10, "length": 5, "zero": False, "data": True},
        {"start": 15, "length": 10, "zero": True, "data": False},
        {"start": 25, "length": 5, "zero": True, "data": True},  # preallocated zeros: copy
    ]
    assert merge_extents(entries, 40) == [
        Extent(0, 15, False),
        Extent(15, 10, True),
        Extent(25, 15, False),
    ]


@pytest.mark.parametrize(("index", "writes"), [(0, DISK1_WRITES), (1, DISK2_WRITES)])
def test_extents_cover_holes_and_data(sample_ova: OvaInfo, index: int, writes: list) -> None:
    raw = sample_ova.disks[index].raw_path.read_bytes()
    with _reader(sample_ova, index) as r:
        assert r.size == sample_ova.disks[index].capacity
        extents = list(r.extents())
    pos = 0
    for e in extents:
        assert e.start == pos and e.length > 0
        pos = e.end
        if e.zero:
            assert raw[e.start : e.end] == bytes(e.length)
    assert pos == len(raw)
    assert any(e.zero for e in extents)
    for offset, data in writes:
        end = offset + len(data)
        covered = sum(
            min(end, e.end) - max(offset, e.start)
            for e in extents
            if not e.zero and e.start < end and e.end > offset
        )
        assert covered == len(data)


def test_whole_disk_read_equals_raw(sample_ova: OvaInfo) -> None:
    for index, disk in enumerate(sample_ova.disks):
        raw = disk.raw_path.read_bytes()
        with _reader(sample_ova, index) as r:
            assert r.read(0, r.size) == raw
            assert r.read(5 * MiB + 100, 333) == raw[5 * MiB + 100 : 5 * MiB + 433]
            assert r.read(r.size - 10, 100) == raw[-10:]  # short only at the end
            assert r.read(r.size, 10) == b""
            assert disk_digest_of_reader(r) == disk.digest


def test_parallel_reads_more_threads_than_streams(sample_ova: OvaInfo) -> None:
    raw = sample_ova.disks[0].raw_path.read_bytes()
    chunk = 256 * 1024 + 7  # odd size: requests straddle grains
    offsets = list(range(0, len(raw), chunk))
    threads: set[int] = set()
    with _reader(sample_ova, 0, streams=3) as r:

        def one(offset: int) -> tuple[int, bytes]:
            threads.add(threading.get_ident())
            return offset, r.read(offset, chunk)

        with ThreadPoolExecutor(8) as pool:
            parts = dict(pool.map(one, offsets))
        assert len(r._group.clients) <= 3
    assert len(threads) > 3
    assert b"".join(parts[o] for o in offsets) == raw


def test_close_stops_qemu_nbd_and_removes_socket_dir(sample_ova: OvaInfo) -> None:
    r = _reader(sample_ova, 0)
    r.read(0, 4096)
    procs, tmpdir = [s.proc for s in r._group.servers], r._group.tmpdir
    assert procs and all(p is not None and p.poll() is None for p in procs)
    assert tmpdir is not None and os.path.isdir(tmpdir)
    r.close()
    assert all(p is not None and p.poll() is not None for p in procs)
    assert not os.path.exists(tmpdir)
    r.close()  # twice is fine
    with pytest.raises(SourceError, match="closed"):
        r.read(0, 10)


def test_two_servers_parallel_reads_equal_raw_and_close_leaves_no_process(
    sample_ova: OvaInfo,
) -> None:
    raw = sample_ova.disks[0].raw_path.read_bytes()
    chunk = 512 * 1024 + 13
    offsets = list(range(0, len(raw), chunk))
    r = _reader(sample_ova, 0, streams=4, servers=2)
    assert r.servers == 2
    with ThreadPoolExecutor(6) as pool:
        parts = dict(pool.map(lambda o: (o, r.read(o, chunk)), offsets))
    assert b"".join(parts[o] for o in offsets) == raw
    servers = r._group.servers
    assert len(servers) == 2 and all(s.proc is not None for s in servers)
    assert all(s.clients for s in servers)  # both processes served reads
    assert sum(len(s.clients) for s in servers) <= 4
    assert all(s.busy == 0 for s in servers)
    tmpdir = r._group.tmpdir
    assert tmpdir is not None and len(_qemu_nbd_pids(tmpdir)) == 2
    r.close()
    assert _qemu_nbd_pids(tmpdir) == []
    assert not os.path.exists(tmpdir)


def test_servers_default_and_bounds(sample_ova: OvaInfo) -> None:
    with _reader(sample_ova, 0, streams=1) as r:
        assert r.servers == 1  # never more processes than connections
    with _reader(sample_ova, 0, streams=3, servers=8) as r:
        assert r.servers == 3 and [s.cap for s in r._group.servers] == [1, 1, 1]
    with _reader(sample_ova, 0, streams=5, servers=2) as r:
        assert [s.cap for s in r._group.servers] == [3, 2]
    with _reader(sample_ova, 0, streams=8) as r:
        assert r.servers == min(8, os.cpu_count() or 1, 4)
    with pytest.raises(ValueError):
        _reader(sample_ova, 0, servers=0)


def test_failed_start_tears_down_started_servers(
    sample_ova: OvaInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the second qemu-nbd cannot start, the first one and the socket folder go away."""
    r = _reader(sample_ova, 0, streams=4, servers=2)
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        if started:
            raise OSError("no more processes")
        started.append(real_popen(*args, **kwargs))  # type: ignore[call-overload]
        return started[0]

    monkeypatch.setattr(reader_module.subprocess, "Popen", popen)
    with pytest.raises(SourceError, match="qemu-nbd did not start: no more processes"):
        r.read(0, 10)
    assert len(started) == 1 and started[0].poll() is not None
    sock = next(str(a) for a in started[0].args if str(a).startswith("--socket="))
    assert not os.path.exists(os.path.dirname(sock.removeprefix("--socket=")))
    assert r._group.tmpdir is None
    assert all(s.proc is None and not s.clients for s in r._group.servers)
    monkeypatch.undo()
    assert r.read(0, 4096) == sample_ova.disks[0].raw_path.read_bytes()[:4096]  # retries
    r.close()


@pytest.mark.parametrize("fraction", [3, 2])
def test_truncated_vmdk_fails_with_qemu_message(sample_ova: OvaInfo, fraction: int) -> None:
    """Truncation is found up front by ``qemu-img check``, not as an EINVAL mid-copy."""
    m = _member(sample_ova.path, sample_ova.disks[0].file)
    size = m.size // fraction // 512 * 512
    with pytest.raises(SourceError) as err:
        VmdkReader(sample_ova.path, m.offset_data, size, member_name=m.name)
    text = str(err.value)
    assert str(sample_ova.path) in text and m.name in text
    assert "truncated" in text and "points after EOF" in text
    assert "json:" not in text  # qemu's message, without the unreadable image spec


def test_garbage_member_fails_in_info(tmp_path: Path) -> None:
    info = build_sample(tmp_path, "junk")
    m = _member(info.path, "junk.mf")  # a text file is no VMDK
    with pytest.raises(SourceError) as err:
        VmdkReader(info.path, m.offset_data, m.size, member_name=m.name)
    assert "junk.mf" in str(err.value) and str(info.path) in str(err.value)
