"""Two reconcilers started together on one warm migration: one waits, the cutover runs once."""

from __future__ import annotations

import os
import subprocess

import pytest

from reconciler.progress.lock import StateLock
from tests.support.vsphere import start_simulator
from tests.support.vsphere_repo import (
    our_snapshots,
    reconcile_once,
    set_cutover,
    vm_status,
    warm_source,
    warm_workspace,
    write_tracked,
)
from tests.support.workspace import CLI, wait_until

MiB = 1024 * 1024
pytestmark = pytest.mark.integration


def test_two_reconcilers_started_together_cut_over_once(workspace_factory, tmp_path) -> None:
    sim = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        _, _, disk_file, data, _ = warm_source(sim)
        ws, env = warm_workspace(workspace_factory, tmp_path, sim, "DC0_H0_VM0")
        reconcile_once(ws, env)  # round 0: the full copy; the VM waits for its cutover
        write_tracked(sim, disk_file, data, 3 * MiB, b"\x5a" * 8192)  # the guest goes on
        set_cutover(ws, "2020-01-01T00:00:00Z", "cut over now")

        # an operator's cron job and a manual run on the same clone: the first is held inside
        # its pass (its status push waits in the remote's hook) until the second is waiting
        block = tmp_path / "hold-pushes"
        block.touch()
        hook = ws.remote / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\nwhile [ -e '{block}' ]; do sleep 0.05; done\ncat >/dev/null\n")
        hook.chmod(0o755)

        def start() -> subprocess.Popen:
            return subprocess.Popen(
                [*CLI, "reconcile", str(ws.clone), "--once", "--state-dir", str(ws.state),
                 "--cluster", str(ws.cluster)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, **env, "COLUMNS": "200"},
            )  # fmt: skip

        first = start()
        second = None
        try:
            holder = StateLock(ws.state)
            wait_until(lambda: f"pid {first.pid}:" in holder.holder())
            second = start()
            line = second.stderr.readline()
            assert "waiting for the state folder" in line and f"pid {first.pid}" in line, line
        finally:
            block.unlink()
        outputs = [p.communicate(timeout=600) for p in (first, second)]  # hang guards
        for p, (out, err) in zip((first, second), outputs, strict=True):
            assert p.returncode == 0, out + err

        vm = vm_status(ws)
        assert vm["phase"] == "Completed", vm
        assert not vm.get("error"), vm
        [image] = [d for d in (ws.cluster / "vs-vms" / "disks").glob("*.img")
                   if d.read_bytes() == bytes(data)]  # fmt: skip
        assert image.read_bytes() == bytes(data)  # byte-identical, the guest's last write too
        assert our_snapshots(sim, "DC0_H0_VM0") == []
    finally:
        sim.stop()
