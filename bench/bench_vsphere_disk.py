"""Benchmark: a vSphere disk copy from the simulator's datastore against ``curl`` of the same file.

Run ``python bench/bench_vsphere_disk.py [--size-mib 1024 --data-pct 50 --streams 4]``. It
starts govmomi's vCenter simulator (built from Debian's packages, as the tests do), gives a VM a
disk of ``--size-mib`` whose flat extent holds ``--data-pct`` percent of data (the rest zeros,
as a thin disk reads), PUTs it into the datastore, then times, median of 3:

  (a) ``curl`` GET of the flat extent over HTTPS to a file, fsynced          (baseline)
  (b) the plugin's reader (HTTPS Range requests) through copy_disk into a raw
      image, fdatasynced and checkpointed in a progress store                (engine)

and prints seconds, MiB/s and curl time / engine time (>1: the engine is faster). The engine
also hashes every chunk, writes only non-zero pieces and makes each checkpoint durable; the
digests are compared at the end. A last line times the reads alone (nothing written), to show
how much of the engine's time is the source side.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.vsphere.plugin import mtv_gitops_connect  # noqa: E402
from plugins.vsphere.simulator import start_simulator  # noqa: E402
from plugins.vsphere.simulator.disks import add_disk, split_path, write_flat_disk  # noqa: E402
from reconciler.progress.store import ProgressStore  # noqa: E402
from reconciler.sources import sha1_fingerprint  # noqa: E402
from reconciler.transfer.engine import copy_disk  # noqa: E402
from reconciler.transfer.rawfile import RawDiskWriter  # noqa: E402

MiB = 1024 * 1024


def disk_content(size: int, data_pct: int) -> bytes:
    """``data_pct`` % of 1 MiB blocks hold pseudo-random data, the others are zeros."""
    out = bytearray(size)
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    for i in range(size // MiB):
        if (i * 37) % 100 < data_pct:
            out[i * MiB : (i + 1) * MiB] = block[:MiB]
            out[i * MiB : i * MiB + 8] = i.to_bytes(8, "little")
    return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--data-pct", type=int, default=50)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    size = args.size_mib * MiB
    data = disk_content(size, args.data_pct)
    sim = start_simulator(hosts=1, vms=1, datastores=1)
    try:
        fp = sha1_fingerprint(sim.host, sim.port)
        conn = mtv_gitops_connect("vsphere", sim.url, sim.secret(thumbprint=fp), {}, {})
        from pyVmomi import vim

        c = conn.si.RetrieveContent()
        view = c.viewManager.CreateContainerView(c.rootFolder, [vim.VirtualMachine], True)
        vm = sorted(view.view, key=lambda v: v._moId)[0]
        view.Destroy()
        ds = vm.datastore[0]
        disk = add_disk(conn.si, vm, size, ds)
        write_flat_disk(sim, disk.backing.fileName, data)
        del data
        ds_name, path = split_path(disk.backing.fileName)
        flat = path.removesuffix(".vmdk") + "-flat.vmdk"
        url = f"{sim.url.removesuffix('/sdk')}/folder/{quote(flat)}?dcPath=DC0&dsName={ds_name}"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "disk.img"
            curl_times, engine_times = [], []
            digests = set()
            for run in range(args.runs):
                out.unlink(missing_ok=True)
                t0 = time.perf_counter()
                subprocess.run(["curl", "-skf", "-o", str(out), url], check=True)
                fd = os.open(out, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                curl_times.append(time.perf_counter() - t0)
                out.unlink()
                store = ProgressStore(Path(tmp) / f"p{run}.db")
                t0 = time.perf_counter()
                reader = conn.open_disk(vm._moId, str(disk.key))
                writer = RawDiskWriter(out, reader.size)
                result = copy_disk(reader, writer, store, "d", streams=args.streams)
                writer.close()
                reader.close()
                engine_times.append(time.perf_counter() - t0)
                store.close()
                digests.add(result.source_digest)
            reader = conn.open_disk(vm._moId, str(disk.key))
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.streams) as pool:
                list(pool.map(lambda o: len(reader.read(o, 4 * MiB)), range(0, size, 4 * MiB)))
            read_only = time.perf_counter() - t0
            reader.close()
        conn.close()
    finally:
        sim.stop()
    tc, te = statistics.median(curl_times), statistics.median(engine_times)
    print(
        f"vSphere disk copy, {args.size_mib} MiB disk, {args.data_pct}% data, simulator datastore"
    )
    print(f"  curl GET of the flat extent : {tc:6.2f} s  {args.size_mib / tc:7.1f} MiB/s")
    print(
        f"  engine ({args.streams} Range streams)   : {te:6.2f} s  {args.size_mib / te:7.1f} MiB/s"
        f"  (runs: {', '.join(f'{t:.2f}' for t in engine_times)})"
    )
    print(
        f"  reads alone ({args.streams} streams, nothing written): {read_only:6.2f} s  "
        f"{args.size_mib / read_only:7.1f} MiB/s"
    )
    print(f"  ratio curl/engine: {tc / te:.2f} (>1: the engine is faster)")
    print(f"  digests agree across runs: {len(digests) == 1}")


if __name__ == "__main__":
    main()
