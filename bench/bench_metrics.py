"""Benchmark: scraping ``/metrics`` over HTTP with 5,000 VMs in the progress store.

Run ``python bench/bench_metrics.py [--vms 5000 --plans 100 --scrapes 20]``.  It fills a
progress store with plans and VM records shaped as the pipeline leaves them (steps with copy
tasks, a fifth of them warm with precopy rounds, Migrations ended and running), serves it with
the daemon's health server and times scrapes, median of ``--scrapes`` (a running plan has 20
VMs copying, the controller_max_vm_inflight default, the rest Pending): while copies write
to the store between scrapes (every scrape reads it all), and idle (served from the last read
until the store changes).  Baselines in the same run: a scrape of an empty store (the
server's fixed cost) and reading every VM record through ``PipelineStore.vms`` (what the
status projection does, JSON parsed in Python).  The goal is a scrape under 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.daemon.health import Health, HealthServer  # noqa: E402
from reconciler.daemon.metrics import plan_uid  # noqa: E402
from reconciler.progress.store import (  # noqa: E402
    MigrationRecord,
    PlanLabels,
    ProgressStore,
    VmProgress,
)

GOAL_MS = 100.0
INFLIGHT = 20  # VMs of a plan copying at once (controller_max_vm_inflight's default)
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STEPS = ("StorePowerState", "PowerOffSource", "WaitForPowerOff", "AllocateDisks")


def fill(store: ProgressStore, vms: int, plans: int) -> None:
    per_plan = max(1, vms // plans)
    for p in range(plans):
        key = f"bench/plan-{p}"
        warm = p % 5 == 0
        store.put_plan_labels(
            PlanLabels(
                key,
                plan_uid(key),
                "vSphere" if warm else "OVA",
                "Warm" if warm else "Cold",
                "Local",
            )
        )
        done = p % 3 != 0
        store.put_migration(
            MigrationRecord(
                key,
                "m1",
                "2026-01-01T00:00:00Z",
                "2026-01-01T02:00:00Z" if done else "",
                ("Failed" if p % 7 == 0 else "Succeeded") if done else "",
            )
        )
        for i in range(per_plan):
            steps = [
                {
                    "name": s,
                    "description": s,
                    "phase": "Completed",
                    "started": "2026-01-01T00:00:00Z",
                }
                for s in STEPS
            ]
            tasks = [
                {
                    "name": f"vm-{i}-disk-{d}",
                    "phase": "Completed",
                    "progress": {"total": 2048, "completed": 2048},
                    "annotations": {"unit": "MB"},
                }
                for d in range(2)
            ]
            # a running plan copies controller_max_vm_inflight (20) VMs; the rest wait Pending
            copying = not done and i < INFLIGHT
            steps.append(
                {
                    "name": "CopyDisks",
                    "phase": "Completed" if done else ("Running" if copying else "Pending"),
                    "started": "2026-01-01T00:10:00Z",
                    "tasks": tasks,
                }
            )
            rec = VmProgress(
                key,
                f"vm-{p}-{i}",
                f"vm-{p}-{i}",
                "m1",
                phase="Completed" if done else ("CopyDisks" if copying else "Pending"),
                result="Succeeded" if done else "",
                started="2026-01-01T00:00:00Z",
                steps=steps,
            )
            if warm and (done or copying):  # a Pending VM has no round yet
                rec.warm = {
                    "precopies": [{"round": r, "bytes": 1 << 20} for r in range(4)],
                    "failures": 0,
                }
            store.put_vm(rec)


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=5000)
    ap.add_argument("--plans", type=int, default=100)
    ap.add_argument("--scrapes", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty = ProgressStore(Path(tmp) / "empty.db")
        full = ProgressStore(Path(tmp) / "full.db")
        t = time.perf_counter()
        fill(full, args.vms, args.plans)
        print(f"filled {args.vms} VMs in {args.plans} plans in {time.perf_counter() - t:.1f}s")
        health = Health()
        server = HealthServer(health, "127.0.0.1", 0).start()
        size = 0

        def scrape() -> None:
            nonlocal size
            with _DIRECT.open(server.url + "/metrics", timeout=30) as resp:
                size = len(resp.read())

        try:
            health.store_from(empty)
            base = median_ms(scrape, args.scrapes)
            health.store_from(full)
            scrape()  # warm the page cache
            idle = median_ms(scrape, args.scrapes)
            copying = full.get_vm("bench/plan-0", "vm-0-0")

            def scrape_after_a_write() -> None:
                full.put_vm(copying)  # a copy's progress saved: the next scrape reads anew
                scrape()

            took = median_ms(scrape_after_a_write, args.scrapes)
        finally:
            server.stop()
        plans = [f"bench/plan-{p}" for p in range(args.plans)]
        parse = median_ms(lambda: [full.vms(k) for k in plans], max(3, args.scrapes // 4))
        empty.close()
        full.close()
    print(f"scrape, empty store (fixed cost):          {base:7.1f} ms")
    print(f"read every VM record (PipelineStore.vms):  {parse:7.1f} ms")
    print(f"scrape with {args.vms} VMs, store idle:       {idle:7.1f} ms")
    print(f"scrape with {args.vms} VMs ({size // 1024} KiB), store written: {took:7.1f} ms")
    print(
        f"ratio against the empty scrape: {took / base:.1f}x; against reading the records: "
        f"{took / parse:.2f}x"
    )
    verdict = "within" if took < GOAL_MS else "OVER"
    print(f"{verdict} the {GOAL_MS:.0f} ms goal")
    sys.exit(0 if took < GOAL_MS else 1)


if __name__ == "__main__":
    main()
