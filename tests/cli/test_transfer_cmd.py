"""``mtv-gitops transfer``: what a transfer Job runs, run here as a real process."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, build_ova, semi_random
from reconciler.plugin_manager import connect
from reconciler.secrets.resolver import env_name
from reconciler.transfer import report
from reconciler.transfer.digest import SHA256T, chunk_record, disk_digest_of_file

MIB = 1024 * 1024
CLI = [sys.executable, "-m", "reconciler.cli", "transfer"]


@pytest.fixture(scope="module")
def ova(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("ova")
    disk = DiskSpec(64 * MIB, [(4 * MIB, semi_random(16 * MIB, 3))])
    info = build_ova(folder / "vm.ova", "vm", disks=[disk])
    conn = connect("ova", str(folder), {}, {})
    (vm,) = conn.inventory().vms
    conn.close()
    return folder, vm.id, vm.disks[0].key, info.disks[0].digest


def args(ova, output: Path, *extra: str) -> list[str]:
    folder, vm_id, disk, _ = ova
    return [
        *CLI,
        "--provider",
        "openshift-mtv/ova-files",
        "--type",
        "ova",
        "--url",
        str(folder),
        "--vm",
        vm_id,
        "--disk",
        disk,
        "--output",
        str(output),
        "--progress-seconds",
        "0",
        *extra,
    ]


def run(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


def test_copies_reports_progress_and_the_outcome(ova, tmp_path: Path) -> None:
    out, term = tmp_path / "pvc" / "disk.img", tmp_path / "termination-log"
    out.parent.mkdir()
    proc = run(args(ova, out, "--termination-log", str(term)))
    assert proc.returncode == 0, proc.stderr
    assert disk_digest_of_file(out) == ova[3]
    lines = proc.stdout.splitlines()
    last = report.parse_progress("\n".join(lines[:-1]))
    assert last is not None and last.bytes_done == last.total == 64 * MIB
    outcome = report.parse_outcome(term.read_text())
    assert outcome is not None and outcome.ok
    assert outcome.result.source_digest == outcome.result.target_digest == ova[3]
    assert (out.parent / ".mtv-gitops-transfer.db").exists()  # the checkpoints, beside it

    again = report.parse_outcome(run(args(ova, out)).stdout.splitlines()[-1])
    assert again.result.resumed_chunks == again.result.chunks_total  # nothing copied twice


def test_sigterm_stops_at_a_durable_point_and_a_new_run_resumes(ova, tmp_path: Path) -> None:
    out = tmp_path / "disk.img"
    argv = args(ova, out, "--max-mibps", "4", "--chunk-mib", "1", "--streams", "1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        p = report.parse_progress(line)
        if p is not None and p.data_bytes_written >= 4 * MIB:
            proc.send_signal(signal.SIGTERM)  # what deleting the Job does to its pod
            break
    assert proc.wait(60) == report.EXIT_FAILED
    proc.stdout.close()
    assert "canceled" in proc.stderr.read()
    proc.stderr.close()
    done = run(args(ova, out, "--chunk-mib", "1"))
    assert done.returncode == 0, done.stderr
    result = report.parse_outcome(done.stdout.splitlines()[-1]).result
    assert 0 < result.resumed_chunks < result.chunks_total
    assert disk_digest_of_file(out) == ova[3]


def test_a_copy_the_previous_version_began_resumes_in_its_digest_format(
    ova, tmp_path: Path
) -> None:
    """Checkpoints an older ``mtv-gitops`` left (SHA-256 tree records, killed midway) after
    an upgrade: the command keeps what they say is durable and finishes in their format."""
    out = tmp_path / "disk.img"
    assert run(args(ova, out, "--chunk-mib", "1")).returncode == 0
    data = out.read_bytes()
    with sqlite3.connect(tmp_path / ".mtv-gitops-transfer.db") as db:
        rows = [i for (i,) in db.execute("SELECT idx FROM chunks ORDER BY idx")]
        for idx in rows:
            rec = chunk_record(data[idx * MIB : (idx + 1) * MIB], MIB, SHA256T)
            db.execute("UPDATE chunks SET hash=? WHERE idx=?", (rec, idx))
        lost = rows[len(rows) // 2 :]  # as if killed before these were durable
        db.executemany("DELETE FROM chunks WHERE idx=?", [(i,) for i in lost])
        db.execute("UPDATE disks SET source_digest='', target_digest='', completed=''")
    with open(out, "r+b") as f:
        for idx in lost:
            f.seek(idx * MIB)
            f.write(bytes(MIB))
    done = run(args(ova, out, "--chunk-mib", "1"))
    assert done.returncode == 0, done.stderr
    result = report.parse_outcome(done.stdout.splitlines()[-1]).result
    assert result.resumed_chunks == len(rows) - len(lost) > 0
    assert result.source_digest.startswith("sha256t-1m-64k:")
    assert result.source_digest == result.target_digest
    assert result.source_digest == disk_digest_of_file(out, chunk_size=MIB, fmt=SHA256T)
    assert disk_digest_of_file(out) == ova[3]  # every byte as in the source


def test_a_full_disk_is_fatal_and_says_so(ova, tmp_path: Path) -> None:
    term = tmp_path / "termination-log"
    argv = args(ova, Path("/dev/full"), "--checkpoints", str(tmp_path / "c.db"))
    proc = run([*argv, "--termination-log", str(term)])
    assert proc.returncode == report.EXIT_FATAL
    outcome = report.parse_outcome(term.read_text())
    assert outcome is not None and not outcome.ok and outcome.reason == report.DISK_FULL
    assert outcome.message.startswith("no space left writing /dev/full")


def test_a_failure_is_retryable_and_has_no_traceback(ova, tmp_path: Path) -> None:
    term = tmp_path / "termination-log"
    out = tmp_path / "missing" / "disk.img"
    ckpt = ["--checkpoints", str(tmp_path / "c.db")]
    proc = run(args(ova, out, "--termination-log", str(term), *ckpt))
    assert proc.returncode == report.EXIT_FAILED
    outcome = report.parse_outcome(term.read_text())
    assert outcome.reason == report.FAILED and "No such file or directory" in outcome.message
    assert "Traceback" not in proc.stderr


def test_the_secret_comes_from_the_environment_and_is_never_printed(ova, tmp_path: Path) -> None:
    out = tmp_path / "disk.img"
    term = tmp_path / "termination-log"
    secret = ["--secret", "openshift-mtv/ova-creds", "--termination-log", str(term)]
    missing = run(args(ova, out, *secret), env={"MTV_GITOPS_SECRETS": ""})
    assert missing.returncode == report.EXIT_FATAL
    assert "secret openshift-mtv/ova-creds not found" in missing.stderr

    value = "pa55-word-never-shown"
    env = {env_name("openshift-mtv", "ova-creds", "password"): value}
    proc = run(args(ova, out, *secret), env=env)
    assert proc.returncode == 0, proc.stderr
    assert value not in proc.stdout + proc.stderr + term.read_text()


def test_the_provider_may_come_from_its_manifest(ova, tmp_path: Path) -> None:
    folder, vm_id, disk, digest = ova
    manifest = tmp_path / "provider.yaml"
    manifest.write_text(
        "apiVersion: forklift.konveyor.io/v1beta1\nkind: Provider\n"
        "metadata: {name: ova-files, namespace: openshift-mtv}\n"
        f"spec: {{type: ova, url: '{folder}', settings: {{streams: '2'}}}}\n"
    )
    out = tmp_path / "disk.img"
    argv = [*CLI, "--provider", "openshift-mtv/ova-files", "--provider-file", str(manifest)]
    proc = run([*argv, "--vm", vm_id, "--disk", disk, "--output", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert disk_digest_of_file(out) == digest


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    proc = run([*CLI, "--provider", "nons", "--vm", "v", "--disk", "d", "--output", "x"])
    assert proc.returncode == 2 and "NAMESPACE/NAME" in proc.stderr
    started = time.monotonic()
    proc = run([*CLI, "--provider", "a/b", "--vm", "v", "--disk", "d", "--output", "x"])
    assert proc.returncode == 2 and "--type" in proc.stderr
    assert time.monotonic() - started < 120  # a hang guard: it must not wait for a cluster


def test_warm_options_need_each_other_and_a_source_with_snapshots(ova, tmp_path: Path) -> None:
    out = tmp_path / "disk.img"
    proc = run(args(ova, out, "--round", "1", "--since", "52 1/8"))
    assert proc.returncode == 2 and "round 1 needs --snapshot and --since" in proc.stderr
    proc = run(args(ova, out, "--round", "2", "--snapshot", "snapshot-3"))
    assert proc.returncode == 2 and "round 2 needs --snapshot and --since" in proc.stderr
    proc = run(args(ova, out, "--snapshot", "snapshot-3", "--since", "52 1/8"))
    assert proc.returncode == 2 and "--since is for a precopy round" in proc.stderr

    term = tmp_path / "termination-log"
    proc = run(args(ova, out, "--snapshot", "snapshot-3", "--termination-log", str(term)))
    assert proc.returncode == report.EXIT_FATAL  # an OVA has no snapshots: no retry helps
    outcome = report.parse_outcome(term.read_text())
    assert outcome is not None and outcome.reason == report.FAILED
    assert "no snapshots or changed block tracking" in outcome.message
    assert not out.exists()

    help_text = run([*CLI, "--help"]).stdout
    for option in ("--snapshot", "--round", "--since", "--change-id"):
        assert option in help_text


def test_a_second_transfer_into_the_same_output_waits_for_the_first(ova, tmp_path: Path) -> None:
    out = tmp_path / "disk.img"
    first = subprocess.Popen(
        args(ova, out, "--max-mibps", "2", "--chunk-mib", "1", "--streams", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert first.stdout is not None
        for line in first.stdout:  # the first one is copying: it holds the output
            p = report.parse_progress(line)
            if p is not None and p.data_bytes_written >= 2 * MIB:
                break
        second = subprocess.Popen(
            args(ova, out, "--chunk-mib", "1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert second.stderr is not None
        line = second.stderr.readline()
        assert f"waiting for the output {out}: in use by pid {first.pid}" in line, line
        first.send_signal(signal.SIGTERM)  # the first stops at a durable point ...
        assert first.wait(60) == report.EXIT_FAILED
        out_text, err = second.communicate(timeout=600)  # ... and the second goes on from it
        assert second.returncode == 0, err
        result = report.parse_outcome(out_text.splitlines()[-1]).result
        assert result.resumed_chunks > 0
        assert disk_digest_of_file(out) == ova[3]
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("verify", [True, False], ids=["verified", "no-verify"])
def test_an_output_removed_since_the_last_run_is_copied_again(
    ova, tmp_path: Path, verify: bool
) -> None:
    """The checkpoints beside the output outlive it (``rm disk.img``): what they record was
    written to a file that is gone, so the next run copies afresh, never reports the zeros of a
    new empty file as the copied disk."""
    out = tmp_path / "disk.img"
    extra = () if verify else ("--no-verify",)
    assert run(args(ova, out, *extra)).returncode == 0
    out.unlink()
    again = run(args(ova, out, *extra))
    assert again.returncode == 0, again.stderr
    assert f"note {out} was not there: the recorded copy into it is forgotten" in again.stderr
    result = report.parse_outcome(again.stdout.splitlines()[-1]).result
    assert result.resumed_chunks == 0 and result.bytes_written > 0
    assert disk_digest_of_file(out) == ova[3]


def test_a_copied_output_changed_since_is_verified_and_copied_again(ova, tmp_path: Path) -> None:
    """A finished copy whose output was written over in place (same file, other bytes): a
    verified run reads the output back before it says the disk is there, and copies afresh
    when it no longer holds what was copied."""
    out = tmp_path / "disk.img"
    assert run(args(ova, out)).returncode == 0
    with open(out, "r+b") as f:
        f.seek(5 * MIB)
        f.write(b"\xff" * 4096)
    again = run(args(ova, out))
    assert again.returncode == 0, again.stderr
    assert "no longer holds the recorded copy" in again.stderr
    result = report.parse_outcome(again.stdout.splitlines()[-1]).result
    assert result.resumed_chunks == 0
    assert disk_digest_of_file(out) == ova[3]
    unchanged = report.parse_outcome(run(args(ova, out)).stdout.splitlines()[-1]).result
    assert unchanged.resumed_chunks == unchanged.chunks_total  # read back, not copied again
