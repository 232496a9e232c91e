"""Benchmark: the transfer engine against ``qemu-img convert`` on the same sparse disk.

Run ``python bench/bench_transfer.py [--size-gib 4 --data-mib 400 --streams 4]``.  It builds a
sparse raw image holding ``--data-mib`` of deterministic data in several regions, then times
  (a) ``qemu-img convert -O raw`` raw -> raw              (baseline)
  (b) copy_disk, RawDiskReader -> RawDiskWriter           (engine)
  (c) ``qemu-img convert -O raw`` of a streamOptimized VMDK (baseline) against copy_disk reading
      the same VMDK inside an OVA through plugins.ova.reader.VmdkReader (when importable)
and prints seconds, MiB/s of data, the engine/baseline speed ratio (>1: engine faster) and
whether the digests agree.  Files live in a temporary folder (``--dir``) removed at the end.
The source is in the page cache for every run; every case starts after a sync and its time
includes making the output durable (qemu-img's output is fsynced, the engine fdatasyncs).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.progress.store import ProgressStore  # noqa: E402
from reconciler.targets.rawdisk import RawDiskReader, RawDiskWriter, allocated_bytes  # noqa: E402
from reconciler.transfer.digest import disk_digest_of_file  # noqa: E402
from reconciler.transfer.engine import copy_disk  # noqa: E402
from reconciler.transfer.extents import DiskReader  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
REGIONS = 7


@dataclass
class Row:
    case: str
    seconds: float
    data_bytes: int
    baseline: float | None = None  # seconds of the case this one is compared with
    digest_ok: bool | None = None
    allocated: int = 0


def make_pool(seed: int = 7) -> bytes:
    """8 MiB of content that compresses about 2:1, like a real disk, not like zeros or noise."""
    rng = random.Random(seed)
    text = (b"mtv-gitops benchmark block, guest filesystem-ish text " * 80)[:2048]
    return b"".join(rng.randbytes(2048) + text for _ in range(8 * MiB // 4096))


def make_source(path: Path, size: int, data: int) -> None:
    """A sparse image with ``data`` bytes in REGIONS regions, each unaligned to the chunks."""
    pool = make_pool()
    per_region = data // REGIONS // MiB * MiB
    stride = size // REGIONS
    with open(path, "wb") as f:
        f.truncate(size)
        written = 0
        for region in range(REGIONS):
            f.seek(region * stride + 123 * 4096)
            n = per_region if region < REGIONS - 1 else data - written
            for i in range(0, n, MiB):
                k = (region * 131 + i // MiB) % 8
                block = pool[k * MiB : (k + 1) * MiB]
                tag = f"r{region}b{i // MiB}".encode().ljust(16)
                f.write((tag + block[16:])[: min(MiB, n - i)])
            written += n


def run(cmd: list[str], output: Path) -> float:
    """Seconds for ``cmd`` plus an fsync of ``output``: the engine's copies are durable too."""
    os.sync()  # start clean: no writeback of earlier cases inside this one's time
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    fd = os.open(output, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - t0


def engine(reader: DiskReader, dst: Path, work: Path, streams: int) -> tuple[float, str]:
    if dst.exists():
        dst.unlink()
    store = ProgressStore(work / f"progress-{dst.stem}.db")
    writer = RawDiskWriter(dst, reader.size)
    os.sync()
    t0 = time.monotonic()
    res = copy_disk(reader, writer, store, dst.stem, streams=streams)
    seconds = time.monotonic() - t0
    writer.close()
    store.close()
    return seconds, res.source_digest


def build_ova(work: Path, raw: Path) -> tuple[Path, Path, int, int]:
    """streamOptimized VMDK of ``raw`` and a minimal OVA holding it; returns member geometry."""
    vmdk = work / "bench-disk1.vmdk"
    run(
        ["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"]
        + [str(raw), str(vmdk)],
        vmdk,
    )
    ovf = work / "bench.ovf"
    ovf.write_text('<?xml version="1.0"?><Envelope/>\n')
    ova = work / "bench.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(ovf, arcname=ovf.name)
        tar.add(vmdk, arcname=vmdk.name)
    with tarfile.open(ova) as tar:
        member = tar.getmember(vmdk.name)
        return ova, vmdk, member.offset_data, member.size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gib", type=float, default=4)
    ap.add_argument("--data-mib", type=int, default=400)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--dir", default=None, help="where to put the images (default: a temp dir)")
    ap.add_argument("--skip-ova", action="store_true")
    args = ap.parse_args(argv)
    if shutil.which("qemu-img") is None:
        print("qemu-img not found (Debian: qemu-utils)", file=sys.stderr)
        return 2

    size = int(args.size_gib * GiB)
    data = args.data_mib * MiB
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=args.dir))
    rows: list[Row] = []
    try:
        src = work / "src.raw"
        t0 = time.monotonic()
        make_source(src, size, data)
        print(
            f"source: {size / GiB:.1f} GiB virtual, {data / MiB:.0f} MiB data in {REGIONS}"
            f" regions, built in {time.monotonic() - t0:.1f} s; streams={args.streams}"
        )
        want = disk_digest_of_file(src)

        qdst = work / "qemu.raw"
        qsec = run(["qemu-img", "convert", "-f", "raw", "-O", "raw", str(src), str(qdst)], qdst)
        rows.append(
            Row(
                "a  qemu-img raw->raw",
                qsec,
                data,
                None,
                disk_digest_of_file(qdst) == want,
                allocated_bytes(qdst),
            )
        )
        qdst.unlink()

        edst = work / "engine.raw"
        with RawDiskReader(src) as reader:
            esec, digest = engine(reader, edst, work, args.streams)
        ok = digest == want and disk_digest_of_file(edst) == want
        rows.append(Row("b  engine raw->raw", esec, data, qsec, ok, allocated_bytes(edst)))
        edst.unlink()

        if not args.skip_ova:
            try:
                from plugins.ova.reader import VmdkReader
            except ImportError as e:
                print(f"(c) skipped: plugins.ova.reader is not importable ({e})")
            else:
                ova, vmdk, offset, length = build_ova(work, src)
                print(f"ova: streamOptimized VMDK of {vmdk.stat().st_size / MiB:.0f} MiB")
                qdst = work / "qemu-vmdk.raw"
                vsec = run(
                    ["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(qdst)], qdst
                )
                rows.append(
                    Row(
                        "c  qemu-img vmdk->raw",
                        vsec,
                        data,
                        None,
                        disk_digest_of_file(qdst) == want,
                        allocated_bytes(qdst),
                    )
                )
                qdst.unlink()
                edst = work / "engine-ova.raw"
                with VmdkReader(ova, offset, length, streams=args.streams) as reader:
                    esec, digest = engine(reader, edst, work, args.streams)
                ok = digest == want and disk_digest_of_file(edst) == want
                rows.append(
                    Row("c  engine ova(vmdk)->raw", esec, data, vsec, ok, allocated_bytes(edst))
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(f"{'case':<26} {'seconds':>8} {'MiB/s':>8} {'ratio':>7} {'alloc MiB':>10}  digest")
    for r in rows:
        ratio = f"{r.baseline / r.seconds:.2f}" if r.baseline else "-"
        mibs = r.data_bytes / MiB / r.seconds
        dig = {True: "match", False: "MISMATCH", None: "-"}[r.digest_ok]
        print(
            f"{r.case:<26} {r.seconds:>8.2f} {mibs:>8.0f} {ratio:>7}"
            f" {r.allocated / MiB:>10.0f}  {dig}"
        )
    print("ratio = baseline seconds / engine seconds (>1: the engine is faster than qemu-img)")
    return 0 if all(r.digest_ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
