"""Benchmark: an oVirt disk downloaded from the real ovirt-imageio daemon by the oVirt plugin and
the transfer engine, against ``ovirt-img download-disk`` (ovirt-imageio's own client, what
Forklift's oVirt populator runs) and ``qemu-img convert`` of the same image, in one run.

Run ``python bench/bench_ovirt_disk.py [--size-gib 4 --data-mib 1024 --streams 4]``. It builds a
qcow2 image of ``--size-gib`` holding ``--data-mib`` of data in several regions (holes between),
serves it as the tests do (``qemu-nbd --read-only --allocation-depth`` behind the daemon, the
test engine adding the ticket when the image transfer is created), then times
  (a) the plugin: an image transfer, the daemon's extents and ranged reads, copy_disk into a
      sparse raw file (no read-back verify, as ovirt-img does none)
  (b) ``ovirt-img download-disk -f raw`` through the same engine and daemon      (baseline)
  (c) ``qemu-img convert -f qcow2 -O raw`` of the image file itself, no HTTP     (baseline)
and prints seconds, MiB/s of data, the ratio baseline/plugin (>1: the plugin is faster) and
whether every output holds the same bytes. Each case starts after a sync and includes making
its output durable. Goal: at least as fast as ovirt-img.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.plugin_manager import connect  # noqa: E402
from reconciler.progress.store import ProgressStore  # noqa: E402
from reconciler.transfer.engine import copy_disk  # noqa: E402
from reconciler.transfer.rawfile import RawDiskWriter  # noqa: E402
from testpeers.ovirt.engine import start_peer  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
REGIONS = 8


def make_image(folder: Path, size: int, data: int) -> Path:
    """A qcow2 image with ``data`` bytes in REGIONS regions spread over ``size``."""
    raw = folder / "source.raw"
    rng = random.Random(7)
    pool = rng.randbytes(MiB)  # incompressible: what a copy of real data costs at worst
    per = data // REGIONS
    with open(raw, "wb") as f:
        f.truncate(size)
        for r in range(REGIONS):
            f.seek(r * (size // REGIONS))
            left = per
            while left:
                n = min(left, len(pool))
                f.write(pool[:n])
                left -= n
    image = folder / "source.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True
    )
    raw.unlink()
    return image


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


def timed(fn) -> float:
    subprocess.run(["sync"], check=True)
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gib", type=float, default=4)
    ap.add_argument("--data-mib", type=int, default=1024)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-ovirt-") as tmp:
        folder = Path(tmp)
        size = int(args.size_gib * GiB)
        image = make_image(folder, size, args.data_mib * MiB)
        peer = start_peer(folder / "peer")
        try:
            engine = peer.engine
            vm_id = engine.add_vm("bench", [(image, "qcow2", "data1", "virtio")], [])
            disk_id = engine.vms[vm_id].attachments[0].disk.id
            conn = connect("ovirt", engine.url, engine.secret(), {})
            outs = {k: folder / f"{k}.raw" for k in ("plugin", "ovirt-img", "qemu-img")}

            def plugin() -> None:
                outs["plugin"].unlink(missing_ok=True)
                store = ProgressStore(folder / "progress.db")
                store.reset_disk("bench")
                reader = conn.open_disk(vm_id, disk_id)
                writer = RawDiskWriter(outs["plugin"], reader.size)
                try:
                    copy_disk(reader, writer, store, "bench", streams=args.streams)
                finally:
                    reader.close()
                    writer.close()
                    store.close()

            def ovirt_img() -> None:
                outs["ovirt-img"].unlink(missing_ok=True)
                peer.ovirt_img_download(disk_id, outs["ovirt-img"])

            def qemu_img() -> None:
                outs["qemu-img"].unlink(missing_ok=True)
                subprocess.run(
                    [
                        "qemu-img",
                        "convert",
                        "-f",
                        "qcow2",
                        "-O",
                        "raw",
                        str(image),
                        str(outs["qemu-img"]),
                    ],
                    check=True,
                )
                with open(outs["qemu-img"], "rb+") as f:
                    os.fsync(f.fileno())

            cases = {"plugin": plugin, "ovirt-img": ovirt_img, "qemu-img": qemu_img}
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.repeat):
                for name, fn in cases.items():
                    times[name].append(timed(fn))
            conn.close()
        finally:
            peer.stop()
        digests = {k: digest(p) for k, p in outs.items()}
        same = len(set(digests.values())) == 1
        ours = statistics.median(times["plugin"])
        print(
            f"{args.size_gib:g} GiB qcow2 image, {args.data_mib} MiB of data, "
            f"{args.streams} streams, median of {args.repeat}"
        )
        print(f"{'case':<12} {'seconds':>8} {'MiB/s':>8} {'baseline/plugin':>16}")
        for name, ts in times.items():
            s = statistics.median(ts)
            ratio = "" if name == "plugin" else f"{s / ours:16.2f}"
            print(f"{name:<12} {s:8.2f} {args.data_mib / s:8.1f} {ratio:>16}")
        print(f"same bytes: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
