"""Benchmark: an OVA's disk read from an NFS share by the OVA plugin, against ``nfs-cat`` (Debian
``libnfs-utils``) reading the same file from the same server, in one run.

Run ``python bench/bench_nfs_ova.py [--size-mib 256 --rounds 5]`` (as the tests: nfs-ganesha in
user space on 127.0.0.1, testpeers/nfs.py). It builds an OVA holding one disk of
``--size-mib`` of incompressible data (streamOptimized VMDK, as VMware exports), puts it on the
share, then times in turns, ``--rounds`` times each:
  (a) the plugin's reader interface (plugins/ova/share.py: libnfs where installed, else nfs-rs):
      the disk's bytes as they lie in the archive, read as the copy's decoder reads them (one
      ``readinto`` of each 4 MiB chunk in turn, into one reused buffer); then, apart, the
      manifest check's pass: the same bytes digested with SHA-256, one read in flight while a
      piece is hashed (plugins/ova/manifest.py ``read_through``)
  (b) ``nfs-cat`` of the whole OVA file to /dev/null                              (baseline)
and prints the medians and the median of the paired ratios plugin/nfs-cat in bytes per second
(>1: the plugin is faster; goal >= 0.8; pairs, because a shared machine's load moves) and
whether (a) read the bytes the file holds. For context it also times (c) the disk decoded
the way the copy reads it (the plugin's ``open_disk``: the VMDK decoded in process through the
share's reader) against (d) the same decode of the local file: the cost of the share for the
copy itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.ova.factory import DiskSpec, build_ova  # noqa: E402
from plugins.ova.manifest import read_through  # noqa: E402
from plugins.ova.plugin import OvaConnection  # noqa: E402
from plugins.ova.share import open_folder  # noqa: E402
from testpeers.nfs import NfsServer  # noqa: E402

MiB = 1024 * 1024
CHUNK = 4 * MiB  # the copy's chunk (reconciler.transfer.digest.CHUNK_SIZE)


def _plugin_read(
    url: str, name: str, offset: int, size: int, digest: bool = True
) -> tuple[float, str, float]:
    """Wall seconds, the digest and this process's CPU seconds (every thread's)."""
    folder = open_folder(url)
    try:
        h = hashlib.sha256()
        cpu = time.process_time()
        t = time.perf_counter()
        f = folder.open(name)
        try:
            if digest:
                missing = read_through(f, offset, size, h.update)
            else:
                buf = memoryview(bytearray(CHUNK))
                pos = 0
                while pos < size:
                    want = min(CHUNK, size - pos)
                    got = f.readinto(offset + pos, buf[:want])
                    pos += got
                    if got < want:
                        break
                missing = size - pos
        finally:
            f.close()
        elapsed = time.perf_counter() - t
        assert missing == 0
        return elapsed, h.hexdigest(), time.process_time() - cpu
    finally:
        folder.close()


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _nfs_cat(url: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``nfs-cat``."""
    cpu = _children_cpu()
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["nfs-cat", url], stdout=null, check=True)
    return time.perf_counter() - t, _children_cpu() - cpu


def _decode(conn: OvaConnection) -> float:
    [vm] = conn.inventory().vms
    t = time.perf_counter()
    reader = conn.open_disk(vm.id, vm.disks[0].key)
    try:
        buf = bytearray(8 * MiB)
        for e in reader.extents():
            if e.zero:
                continue
            pos = e.start
            while pos < e.end:
                n = min(len(buf), e.end - pos)
                reader.readinto(pos, memoryview(buf)[:n])
                pos += n
    finally:
        reader.close()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-nfs-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        server = NfsServer(root / "nfs")
        ova_dir = server.export / "ovas"
        ova_dir.mkdir()
        size = args.size_mib * MiB
        info = build_ova(
            ova_dir / "bench.ova", "bench", disks=[DiskSpec(size, [(0, os.urandom(size))])]
        )
        import tarfile

        with tarfile.open(info.path) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(".vmdk"))
        data = info.path.read_bytes()[member.offset_data : member.offset_data + member.size]
        want = hashlib.sha256(data).hexdigest()
        del data
        for p in [ova_dir, *ova_dir.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        server.start()
        try:
            url = server.url(ova_dir)
            cat_url = f"nfs://127.0.0.1{ova_dir}/bench.ova"
            plugin, hashed, cat, ratios, same = [], [], [], [], True
            cpu_plugin, cpu_cat = [], []
            for _ in range(args.rounds):
                elapsed, _, cpu = _plugin_read(
                    url, "bench.ova", member.offset_data, member.size, False
                )
                plugin.append(member.size / elapsed)
                cpu_plugin.append(cpu / member.size * 2**30)
                elapsed, cpu = _nfs_cat(cat_url)
                cat.append(info.path.stat().st_size / elapsed)
                cpu_cat.append(cpu / info.path.stat().st_size * 2**30)
                ratios.append(plugin[-1] / cat[-1])  # paired: the machine's load changes
                elapsed, got, _ = _plugin_read(url, "bench.ova", member.offset_data, member.size)
                hashed.append(member.size / elapsed)
                same = same and got == want
            remote, local = OvaConnection(open_folder(url)), OvaConnection(ova_dir)
            try:
                turns = range(max(1, args.rounds // 2))
                dec_nfs = statistics.median(_decode(remote) for _ in turns)
                dec_local = statistics.median(_decode(local) for _ in turns)
            finally:
                remote.close()
                local.close()
        finally:
            server.close()
    p, c = statistics.median(plugin), statistics.median(cat)
    print(f"disk member: {member.size / MiB:.0f} MiB; rounds: {args.rounds}")
    print(f"(a) plugin reader over NFS : {p / MiB:7.1f} MiB/s")
    print(
        f"    the same with SHA-256    : {statistics.median(hashed) / MiB:7.1f} MiB/s  "
        f"bytes identical: {same}"
    )
    print(f"(b) nfs-cat                : {c / MiB:7.1f} MiB/s")
    print(
        f"CPU seconds per GiB read (medians): (a) {statistics.median(cpu_plugin):.3f}, "
        f"(b) {statistics.median(cpu_cat):.3f}; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"ratio plugin/nfs-cat (median of paired runs, bytes per second): "
        f"{statistics.median(ratios):.2f}x (goal >= 0.8); of the medians: {p / c:.2f}x"
    )
    print(f"(c) the copy's decode over NFS: {dec_nfs:.2f} s; (d) local file: {dec_local:.2f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
