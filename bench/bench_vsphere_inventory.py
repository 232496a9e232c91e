"""Benchmark: reading a 5,000-VM vCenter inventory in full, incrementally, and one VM at a time.

Run ``python bench/bench_vsphere_inventory.py [--vms-per-pool 2500 --runs 3 --naive-sample 200]``.
It starts govmomi's vCenter simulator (``plugins/vsphere/simulator``, the tests' peer)
with one datacenter holding a cluster of ``--hosts`` hosts and one standalone host, each with a
resource pool of ``--vms-per-pool`` VMs (2 x 2,500 = 5,000 VMs), logs in over TLS, and times
  (a) full: ``InventoryCache.snapshot()`` on a fresh cache (two PropertyCollectors of its own,
      one for the VMs' devices and one for everything else, a view and a filter per kind each
      reads, WaitForUpdatesEx from version "" asked of both side by side), median of
      ``--runs``, each cache closed before the next; in turns with it the same read through
      one collector (``split=False``: how the plugin read before the split) and the
      baseline, the read with the answers parsed by pyvmomi's deserializer
      (``InventoryCache(lxml=False)``: how the plugin read before lxml did), whose records
      must equal lxml's; beside them ``read_all`` (one paged RetrievePropertiesEx of every
      kind, the other way to read everything), median of ``--runs``
  (b) incremental: the next ``snapshot()`` of a warm cache after one VM was renamed (the rename
      task waited for), median of ``--runs`` renames; and a pass with nothing changed
  (c) naive (baseline): per VM, ``vm.name`` and ``vm.config.hardware.numCPU`` read through
      pyvmomi's managed-object properties (a round trip each), on ``--naive-sample`` VMs spread
      over the set, extrapolated to every VM (stated as such, not measured on all)
and prints seconds, this process's CPU seconds (parsing SOAP and applying updates; the rest of
the wall time is the simulator), the ratios naive/full, pyvmomi/lxml, one collector/split and
full/incremental (>1: the first is slower), and whether the full read, ``read_all`` and the
incremental results agree.

Where a full read's time goes (5,000 VMs, 2 cores, nothing else under the benchmark lock, load
0.9-1.5): govmomi's simulator builds each answer whole before its first byte, about 0.9 s for
one 46 MB answer; split, the two answers (29 MB of devices, 18 MB of the rest) are built at once
and the first is in after 0.3-0.5 s, the other by the time the first is read. This process's
CPU is then 2.0-3.0 s (the machine's speed drifts that much): lxml parses about 0.5 s (0.15-0.3
s per part), building the records 1.0-1.5 s (most of it lxml handing Python each of the 1.1
million elements), freeing the parsed trees about 0.3 s, applying 0.1 s; setting the
collectors up costs 0.05-0.15 s. Measured in turns in one process (medians, best in brackets):
split 2.97 s (2.78) against one collector 3.74 s (2.92), 6 pairs; split 3.67 s (3.33) against
the code before the split 4.24 s (3.65), 6 pairs, 1.13x per pair; with this benchmark, split
3.1-3.9 s and one collector 3.9-4.6 s over four runs. The simulator leaks a listener per
destroyed collector and slows down as a run goes on, so compare figures of one run only.

Each timed read starts on a collected heap that holds the latest lxml snapshot and no more:
pyvmomi's records are kept as a fingerprint (until 2026-12-03 its 5,000 VMs of objects stayed
alive through the next reads, and every collection during them walked those too). With that,
nothing else running (load 0.5-1.2), ``--runs 5``: split 3.16 s median (best 2.78, 2.57 s of
CPU here), one collector 4.43 s (3.77), pyvmomi 16.7 s; before that change, the same code in
the run just before: split 3.95 s (3.25), one collector 4.93 s (3.56). A process that reads
nothing but the inventory (a fresh simulator, no pyvmomi baseline) took 2.58-3.37 s split.

Leaves of scalar and reference fields read without an ``xsi:type`` lookup (2026-12-03 22:47-22:53,
nothing else running, load 0.2-1.2; the machine was faster then: pyvmomi's baseline took
9.8-11.5 s, against 16.7 s at 22:17): split 1.96 s median (1.90-2.22 s over 5 runs; 1.55 s of
CPU here), and 1.96 s again (``--runs 3``); the code before that change, run just before and
after it, 2.31 s and 2.04 s (1.69-1.71 s of CPU): 8-9% less CPU. Split over pyvmomi's time is
0.18 in those runs; at the issue's own baseline (pyvmomi 12.4 s) that is 2.2 s, at 22:17's slow
16.7 s about 3.0 s.

Two things of govmomi 0.24's simulator (not of vCenter) shape (b): WaitForUpdatesEx with
maxWaitSeconds=0 answers only at its next 250 ms tick, and for every queued object update (a
rename task queues about 5: the task, the task manager, the VM) it collects every filter's full
property set again, 5,000 VMs included, once per filter. So the simulator's work for one rename
grows with the inventory, while the answer, and this process's work, stay one VM small; the
simulator's log (in a temporary folder, removed at the end unless ``--keep-log``) shows the
updates it applied.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins.vsphere import session  # noqa: E402
from plugins.vsphere.inventory import KINDS, Snapshot, read_all  # noqa: E402
from plugins.vsphere.simulator import Simulator, start_simulator  # noqa: E402
from plugins.vsphere.updates import InventoryCache  # noqa: E402

APPLYING = re.compile(r"applying (\d+) updates to (\d+) filters")


@contextmanager
def stderr_to(path: Path) -> Iterator[None]:
    """Point fd 2 at ``path`` while a child starts, so it inherits the file, not the terminal
    (the simulator logs every WaitForUpdatesEx)."""
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def projection(snap: Snapshot) -> dict[str, dict[str, dict[str, Any]]]:
    """What two reads are compared on: every property's plain record (references by moid and
    type), all but each object's own reference."""
    return {
        k.field: {
            moid: {p: v for p, v in props.items() if p != "_obj"}
            for moid, props in getattr(snap, k.field).items()
        }
        for k in KINDS
    }


def fingerprint(snap: Snapshot) -> str:
    """A digest of every record of ``snap`` (references by type and moid): lets the records
    of two reads be compared without keeping the first read's millions of objects alive
    while the next read is timed (a full collection would walk them all)."""
    whole = {k.field: getattr(snap, k.field) for k in KINDS}
    text = json.dumps(whole, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class Calls:
    """Counts the SOAP calls (HTTP round trips) made over a pyvmomi stub's connections, by
    pyvmomi or by the lxml reader: the cost that a real vCenter's network latency
    multiplies."""

    def __init__(self, stub: Any) -> None:
        self.n = 0
        connection = stub.GetConnection

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return connection(*args, **kwargs)

        stub.GetConnection = counted


def timed(fn: Callable[[], Any], calls: Calls) -> tuple[float, float, int, Any]:
    """(wall seconds, this process's CPU seconds, SOAP calls, result)."""
    before = calls.n
    t0, c0 = time.perf_counter(), time.process_time()
    value = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, calls.n - before, value


def last_applied(log: Path) -> str:
    """What the simulator's last WaitForUpdatesEx applied, from its log."""
    found = APPLYING.findall(log.read_text(errors="replace"))
    return f"{found[-1][0]} updates x {found[-1][1]} filters" if found else "none"


def main(argv: list[str] | None = None) -> int:
    from pyVim.task import WaitForTask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms-per-pool", type=int, default=2500, help="the simulator has 2 pools")
    ap.add_argument("--hosts", type=int, default=2, help="hosts in the cluster")
    ap.add_argument("--runs", type=int, default=3, help="runs per case; the median is shown")
    ap.add_argument("--naive-sample", type=int, default=200, help="VMs for the naive baseline")
    ap.add_argument("--keep-log", action="store_true", help="keep the simulator's log")
    args = ap.parse_args(argv)

    log = Path(tempfile.mkdtemp(prefix="bench-vsphere-")) / "simulator.log"
    print("starting the simulator (built once with Go if needed) ...", flush=True)
    t0 = time.perf_counter()
    with stderr_to(log):
        sim: Simulator = start_simulator(
            hosts=args.hosts, vms=args.vms_per_pool, datastores=2, clusters=1, password="b-1"
        )
    try:
        print(f"simulator up in {time.perf_counter() - t0:.1f} s; its log: {log}", flush=True)
        si = session.connect(sim.url, sim.secret(insecureSkipVerify="true"), timeout=600)
        counter = Calls(si._stub)

        full: list[tuple[float, float, int]] = []
        single: list[tuple[float, float, int]] = []
        baseline: list[tuple[float, float, int]] = []
        snap = Snapshot()
        reference = ""  # pyvmomi's records, as a fingerprint
        same_records = True
        ways = (
            ("pyvmomi", False, True, baseline),
            ("lxml, one collector", True, False, single),
            ("lxml, split", True, True, full),
        )
        for run in range(args.runs):
            for label, lxml, split, rows in ways:
                # each read starts on a heap holding only the latest snapshot (as a reconciler
                # holds its last one), the garbage of the read before already collected
                got = None
                gc.collect()
                with InventoryCache(si, lxml=lxml, split=split) as cache:
                    wall, cpu, calls, got = timed(cache.snapshot, counter)
                    rows.append((wall, cpu, calls))
                    print(
                        f"full run {run + 1} ({label}): {wall:.2f} s"
                        f" ({cpu:.2f} s CPU here), {cache.last.changed} objects, {calls} calls",
                        flush=True,
                    )
                if lxml:
                    same_records &= fingerprint(got) == reference
                    snap = got
                else:
                    reference = fingerprint(got)
        n = len(snap.vms)
        print("inventory: " + ", ".join(f"{len(getattr(snap, k.field))} {k.field}" for k in KINDS))

        by_kind: list[tuple[float, float, int]] = []
        whole = None
        for run in range(args.runs):
            whole = None
            gc.collect()
            wall, cpu, calls, whole = timed(lambda: read_all(si), counter)
            by_kind.append((wall, cpu, calls))
            print(
                f"read_all run {run + 1}: {wall:.2f} s ({cpu:.2f} s CPU here), {calls} calls",
                flush=True,
            )
        full_agrees = projection(snap) == projection(whole)

        cache = InventoryCache(si)
        cache.snapshot()
        vms = [props["_obj"] for _, props in sorted(snap.vms.items())]
        incr: list[tuple[float, float, int]] = []
        incr_agrees = True
        for run in range(args.runs):
            vm = vms[run * 97 % n]
            WaitForTask(vm.Rename_Task(f"bench-renamed-{run}"))
            wall, cpu, calls, now = timed(cache.snapshot, counter)
            incr.append((wall, cpu, calls))
            last = cache.last
            incr_agrees &= not last.full and last.changed == 1
            incr_agrees &= now.vms[vm._moId]["name"] == f"bench-renamed-{run}"
            print(
                f"incremental run {run + 1}: {wall:.3f} s ({cpu * 1000:.1f} ms CPU here),"
                f" {last.changed} object changed, {calls} call;"
                f" the simulator applied {last_applied(log)}",
                flush=True,
            )
        idle_wall, idle_cpu, idle_calls, _ = timed(cache.snapshot, counter)
        incr_agrees &= not cache.last.full and cache.last.changed == 0
        incr_agrees &= projection(cache.snapshot()) == projection(read_all(si))
        cache.close()

        step = max(1, n // max(1, args.naive_sample))
        sample = vms[::step][: args.naive_sample]
        naive_wall, naive_cpu, naive_calls, _ = timed(
            lambda: [(vm.name, vm.config.hardware.numCPU) for vm in sample], counter
        )
        scale = n / len(sample)
        print(f"naive: {len(sample)} VMs in {naive_wall:.2f} s", flush=True)
    finally:
        sim.stop()
        if not args.keep_log:
            shutil.rmtree(log.parent, ignore_errors=True)

    def med(rows: list[tuple[float, float, int]]) -> tuple[float, float, float, int]:
        return (
            statistics.median(r[0] for r in rows),
            min(r[0] for r in rows),
            statistics.median(r[1] for r in rows),
            max(r[2] for r in rows),
        )

    naive = naive_wall * scale
    f_wall, f_best, f_cpu, f_calls = med(full)
    b_wall, b_best, b_cpu, b_calls = med(baseline)
    s_wall, s_best, s_cpu, s_calls = med(single)
    k_wall, k_best, k_cpu, k_calls = med(by_kind)
    i_wall, i_best, i_cpu, i_calls = med(incr)
    print()
    print(
        f"{'case':<42} {'VMs':>5} {'seconds':>8} {'best':>7} {'CPU here':>9} {'calls':>6}"
        f" {'ratio':>7}"
    )
    n_calls = round(naive_calls * scale)
    rows = [
        ("c  naive, 2 reads/VM (extrapolated)", naive, None, naive_cpu * scale, n_calls, None),
        (
            "a  baseline: full, pyvmomi parses",
            b_wall,
            b_best,
            b_cpu,
            b_calls,
            naive / b_wall,
        ),
        (
            "a  full, one collector (lxml, not split)",
            s_wall,
            s_best,
            s_cpu,
            s_calls,
            naive / s_wall,
        ),
        (
            "a  full: InventoryCache first snapshot()",
            f_wall,
            f_best,
            f_cpu,
            f_calls,
            naive / f_wall,
        ),
        (
            "a  full: read_all (one RetrieveProps)",
            k_wall,
            k_best,
            k_cpu,
            k_calls,
            naive / k_wall,
        ),
        ("b  incremental: one VM renamed", i_wall, i_best, i_cpu, i_calls, f_wall / i_wall),
        (
            "b  incremental: nothing changed",
            idle_wall,
            None,
            idle_cpu,
            idle_calls,
            f_wall / idle_wall,
        ),
    ]
    for label, wall, best, cpu, calls, ratio in rows:
        print(
            f"{label:<42} {n:>5} {wall:>8.3f} {'-' if best is None else f'{best:.3f}':>7}"
            f" {cpu:>9.3f} {calls:>6} {'-' if ratio is None else f'{ratio:.1f}':>7}"
        )
    print(
        "ratio: (a) naive s / full s, (b) full (InventoryCache) s / incremental s; >1: faster\n"
        f"lxml against pyvmomi (same run, medians): {b_wall / f_wall:.1f}x wall,"
        f" {b_cpu / max(f_cpu, 1e-9):.1f}x CPU here; records identical: "
        f"{'yes' if same_records else 'NO'}\n"
        f"split against one collector (same run, medians): {s_wall / f_wall:.2f}x wall,"
        f" {s_cpu / max(f_cpu, 1e-9):.2f}x CPU here\n"
        f"naive = {len(sample)} sampled VMs ({naive_wall:.2f} s, 2 round trips each) x {n}"
        f" / {len(sample)}: an extrapolation, not a measurement of all {n} VMs\n"
        "CPU here = this process (parsing SOAP, applying updates); the rest of the wall"
        " time is the simulator, whose incremental cost is its own (see the docstring)\n"
        "calls = SOAP round trips (to a real vCenter, each also costs the network latency)\n"
        f"full read equals read_all: {'yes' if full_agrees else 'NO'}; incremental passes"
        f" right and equal to a fresh read_all: {'yes' if incr_agrees else 'NO'}"
    )
    return 0 if full_agrees and incr_agrees and same_records else 1


if __name__ == "__main__":
    sys.exit(main())
