"""Benchmark: the transfer engine against ``qemu-img convert`` on the same sparse disk.

Run ``python bench/bench_transfer.py [--size-gib 4 --data-mib 400 --streams 4]``.  It builds a
sparse raw image holding ``--data-mib`` of deterministic data in several regions, then times
  (a) ``qemu-img convert -O raw`` raw -> raw              (baseline)
  (b) copy_disk, RawDiskReader -> RawDiskWriter           (engine)
  (c) ``qemu-img convert -O raw`` of a streamOptimized VMDK (baseline) against copy_disk reading
      the same VMDK inside an OVA through plugins.ova.reader.VmdkReader (when importable)
  (d) a VM of 4 disks (``--data-mib`` of data in the biggest, 1/2, 1/4, 1/4 of it in the
      others): the biggest disk alone, the 4 disks one after another, and the 4 at once sharing
      one budget of ``--streams`` streams (``StreamBudget``), in turns (alone, serial, at once,
      ``--repeat`` times); it prints the medians of the paired ratios VM seconds / biggest-disk
      seconds (goal: about 1 at once) and the CPU seconds of each
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
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.progress.store import ProgressStore  # noqa: E402
from reconciler.transfer.digest import disk_digest_of_file  # noqa: E402
from reconciler.transfer.engine import StreamBudget, copy_disk  # noqa: E402
from reconciler.transfer.extents import DiskReader  # noqa: E402
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter, allocated_bytes  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
REGIONS = 7


@dataclass
class Row:
    case: str
    times: list[float]
    data_bytes: int
    baseline: Row | None = None  # the qemu-img case this one is compared with
    digest_ok: bool | None = None
    allocated: int = 0

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)


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
    """One fresh copy (new target, new progress store), timed from start to durable."""
    if dst.exists():
        dst.unlink()
    db = Path(tempfile.mkstemp(prefix="progress-", suffix=".db", dir=work)[1])
    store = ProgressStore(db)
    writer = RawDiskWriter(dst, reader.size)
    os.sync()
    t0 = time.monotonic()
    res = copy_disk(reader, writer, store, dst.stem, streams=streams)
    seconds = time.monotonic() - t0
    writer.close()
    store.close()
    for f in work.glob(db.name + "*"):
        f.unlink()
    return seconds, res.source_digest


def copy_vm(
    sources: list[Path], work: Path, streams: int, at_once: bool
) -> tuple[float, float, list[str]]:
    """Copy a VM's disks, one after another or all at once under one stream budget; returns
    wall and CPU seconds (from a synced start to durable targets) and the digests."""
    outs = [work / f"vm-{i}.raw" for i in range(len(sources))]
    for out in outs:
        out.unlink(missing_ok=True)
    store = ProgressStore(work / "vm-progress.db")
    budget = StreamBudget(streams) if at_once else None
    digests: list[str] = [""] * len(sources)

    def one(i: int) -> None:
        with RawDiskReader(sources[i]) as reader, RawDiskWriter(outs[i], reader.size) as writer:
            res = copy_disk(reader, writer, store, f"vm-{i}", streams=streams, budget=budget)
        digests[i] = res.source_digest

    os.sync()
    t0, c0 = time.monotonic(), time.process_time()
    if at_once:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sources))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(len(sources)):
            one(i)
    seconds, cpu = time.monotonic() - t0, time.process_time() - c0
    store.close()
    for f in work.glob("vm-progress.db*"):
        f.unlink()
    for out in outs:
        out.unlink()
    return seconds, cpu, digests


def vm_case(size: int, data: int, work: Path, streams: int, repeat: int) -> bool:
    """(d): a 4-disk VM against its biggest disk alone, paired runs, medians of the ratios."""
    shares = (1.0, 0.5, 0.25, 0.25)
    sources = [work / f"vm-src-{i}.raw" for i in range(len(shares))]
    for path, share in zip(sources, shares, strict=True):
        make_source(path, size, int(data * share) // MiB * MiB)
    want = [disk_digest_of_file(p) for p in sources]
    alone, serial, at_once = [], [], []
    ok = True
    for _ in range(repeat):
        a = copy_vm(sources[:1], work, streams, at_once=False)
        s = copy_vm(sources, work, streams, at_once=False)
        o = copy_vm(sources, work, streams, at_once=True)
        ok &= a[2] == want[:1] and s[2] == want and o[2] == want
        alone.append(a)
        serial.append(s)
        at_once.append(o)
    med = statistics.median
    print(
        f"\n(d) a VM of 4 disks ({', '.join(f'{data * x / MiB:.0f}' for x in shares)} MiB of data),"
        f" {streams} streams; medians of {repeat} paired runs"
    )
    print(f"{'case':<34} {'seconds':>8} {'cpu s':>6} {'VM/biggest':>11}")
    for name, rows in (
        ("biggest disk alone", alone),
        ("4 disks one after another", serial),
        ("4 disks at once, one budget", at_once),
    ):
        ratio = med(r[0] / a[0] for r, a in zip(rows, alone, strict=True))
        print(
            f"{name:<34} {med(r[0] for r in rows):>8.2f} {med(r[1] for r in rows):>6.2f}"
            f" {ratio:>11.2f}"
        )
    print(f"digests: {'match' if ok else 'MISMATCH'}")
    for path in sources:
        path.unlink()
    return ok


def measure(
    case: str,
    once: Callable[[Path], tuple[float, str | None]],
    out: Path,
    want: str,
    data: int,
    repeat: int,
    baseline: Row | None = None,
) -> Row:
    """Run ``once`` ``repeat`` times into ``out``; check the last output's digest."""
    times: list[float] = []
    ok = True
    for _ in range(repeat):
        if out.exists():
            out.unlink()
        seconds, digest = once(out)
        times.append(seconds)
        ok = ok and digest in (None, want)
    row = Row(case, times, data, baseline, ok and disk_digest_of_file(out) == want)
    row.allocated = allocated_bytes(out)
    out.unlink()
    return row


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
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the median is shown")
    ap.add_argument("--skip-ova", action="store_true")
    ap.add_argument("--skip-vm", action="store_true", help="skip (d), the 4-disk VM")
    ap.add_argument("--only-vm", action="store_true", help="run only (d), the 4-disk VM")
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
        vm_ok = True
        if not args.skip_vm:
            vm_ok = vm_case(size, data, work, args.streams, args.repeat)
        if args.only_vm:
            return 0 if vm_ok else 1

        def qemu_raw(out: Path) -> tuple[float, str | None]:
            return run(
                ["qemu-img", "convert", "-f", "raw", "-O", "raw", str(src), str(out)], out
            ), None

        def engine_raw(out: Path) -> tuple[float, str | None]:
            with RawDiskReader(src) as reader:
                return engine(reader, out, work, args.streams)

        q = measure("a  qemu-img raw->raw", qemu_raw, work / "q.raw", want, data, args.repeat)
        e = measure("b  engine raw->raw", engine_raw, work / "e.raw", want, data, args.repeat, q)
        rows += [q, e]

        if not args.skip_ova:
            try:
                from plugins.ova.reader import VmdkReader
            except ImportError as err:
                print(f"(c) skipped: plugins.ova.reader is not importable ({err})")
            else:
                ova, vmdk, offset, length = build_ova(work, src)
                print(f"ova: streamOptimized VMDK of {vmdk.stat().st_size / MiB:.0f} MiB")

                def qemu_vmdk(out: Path) -> tuple[float, str | None]:
                    cmd = ["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(out)]
                    return run(cmd, out), None

                def engine_ova(out: Path) -> tuple[float, str | None]:
                    with VmdkReader(ova, offset, length, streams=args.streams) as reader:
                        return engine(reader, out, work, args.streams)

                q = measure(
                    "c  qemu-img vmdk->raw", qemu_vmdk, work / "q.raw", want, data, args.repeat
                )
                e = measure(
                    "c  engine ova(vmdk)->raw",
                    engine_ova,
                    work / "e.raw",
                    want,
                    data,
                    args.repeat,
                    q,
                )
                rows += [q, e]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"{'case':<26} {'seconds':>8} {'best':>6} {'MiB/s':>7} {'ratio':>6} {'alloc MiB':>10}"
        "  digest"
    )
    for r in rows:
        ratio = f"{r.baseline.seconds / r.seconds:.2f}" if r.baseline else "-"
        mibs = r.data_bytes / MiB / r.seconds
        dig = {True: "match", False: "MISMATCH", None: "-"}[r.digest_ok]
        print(
            f"{r.case:<26} {r.seconds:>8.2f} {min(r.times):>6.2f} {mibs:>7.0f} {ratio:>6}"
            f" {r.allocated / MiB:>10.0f}  {dig}"
        )
    print(
        f"seconds: median of {args.repeat} runs, each from a synced start to a durable target;"
        " MiB/s of data at the median\n"
        "ratio = qemu-img seconds / engine seconds (>1: the engine is faster than qemu-img)"
    )
    return 0 if vm_ok and all(r.digest_ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
