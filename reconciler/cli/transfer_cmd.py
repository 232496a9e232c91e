"""``mtv-gitops transfer``: copy one source disk into a file or block device, resumably.

This is what a kubevirt target's transfer Job runs, one disk per Job, with the PVC mounted at
``--output``. It connects to the source Provider by itself (its plugin, its credentials from the
environment), keeps its checkpoints in a SQLite file beside the disk (``--checkpoints``), so a
new pod continues where a killed one stopped, and reports as ``reconciler.transfer.report``
describes: JSON progress lines on stdout, the outcome in the termination message, an exit code
that says whether another attempt can help.

Warm migration runs one Job per round on the same output and checkpoints: round 0 copies the
disk whole as a snapshot holds it (``--snapshot``) and records the snapshot's change id
(``--change-id``); round N (``--round N``, 1, 2, ...) asks the source for the areas changed
between ``--since`` and the snapshot and copies only the chunks they touch, on top of what the
earlier rounds left. A round needs the checkpoints of the full copy (they say what the target
holds); a round killed midway resumes with the same areas, one already done ends at once.
"""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler.transfer import report

if TYPE_CHECKING:
    from reconciler.transfer.engine import CopyResult

DEFAULT_CHECKPOINTS = ".mtv-gitops-transfer.db"  # beside a disk.img on a Filesystem PVC


def _split(value: str, flag: str) -> tuple[str, str]:
    ns, _, name = value.partition("/")
    if not ns or not name:
        raise click.BadParameter(f"{value!r}: give NAMESPACE/NAME", param_hint=flag)
    return ns, name


def _provider_from_file(path: Path) -> dict[str, Any]:
    """type, url, settings and secret of the Provider manifest in ``path``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="safe").load(path.read_text()) or {}
    except (OSError, YAMLError) as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc}", param_hint="--provider-file"
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != "Provider":
        raise click.BadParameter(f"{path} is not a Provider manifest", param_hint="--provider-file")
    spec = doc.get("spec") or {}
    meta = doc.get("metadata") or {}
    secret = spec.get("secret") or {}
    return {
        "type": spec.get("type", ""),
        "url": spec.get("url", ""),
        "settings": {str(k): str(v) for k, v in (spec.get("settings") or {}).items()},
        "secret": (
            f"{secret.get('namespace') or meta.get('namespace', '')}/{secret['name']}"
            if secret.get("name")
            else None
        ),
    }


def _is_device(path: Path) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is the target running out of space."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(cur, sqlite3.OperationalError) and "disk is full" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@click.command("transfer")
@click.option("--provider", required=True, metavar="NS/NAME", help="The source Provider.")
@click.option(
    "--provider-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The Provider manifest (type, url, settings, secret come from it).",
)
@click.option(
    "--type",
    "ptype",
    default=None,
    help="The Provider's spec.type (a type an installed source plugin answers for).",
)
@click.option("--url", default="", help="The Provider's spec.url.")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="spec.settings.")
@click.option(
    "--secret",
    default=None,
    metavar="NS/NAME",
    help="The Provider's spec.secret; its keys come from MTV_GITOPS_SECRET_<NS>_<NAME>_<KEY> "
    "(or the secrets file of $MTV_GITOPS_SECRETS).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="ID=ADDRESS",
    help="A source host's migration-network address (from a Host manifest); repeatable.",
)
@click.option(
    "--host-secret",
    "host_secrets",
    multiple=True,
    metavar="ID=NS/NAME",
    help="That host's credentials Secret, read like --secret; repeatable.",
)
@click.option("--vm", "vm_id", required=True, help="The source VM's id.")
@click.option("--disk", "disk_key", required=True, help="The disk's key in the inventory.")
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Raw image to write (created sparse) or block device.",
)
@click.option(
    "--checkpoints",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"Progress file for resuming. Default: {DEFAULT_CHECKPOINTS} beside --output (a "
    "block device has no 'beside': give it, or the copy cannot resume).",
)
@click.option(
    "--snapshot",
    "snapshot_id",
    default="",
    metavar="ID",
    help="Read the disk as this snapshot of the VM holds it (warm migration; the source must "
    "support snapshots and changed block tracking).",
)
@click.option(
    "--round",
    "round_no",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Warm precopy round: 0 copies the disk whole; N >= 1 copies only the areas changed "
    "since --since, onto the copy earlier rounds left (needs --snapshot and --since).",
)
@click.option(
    "--since",
    default="",
    metavar="CHANGE_ID",
    help="Round >= 1: the change id (of the previous round's snapshot) the changed areas are "
    "counted from.",
)
@click.option(
    "--change-id",
    default="",
    metavar="ID",
    help="The change id of --snapshot, recorded with the copy (round 0) or the round, for the "
    "next round to start from.",
)
@click.option("--streams", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--chunk-mib", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--verify/--no-verify", default=True, show_default=True, help="Re-read and compare.")
@click.option("--max-mibps", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--progress-seconds", default=2.0, show_default=True, help="Between progress lines.")
@click.option(
    "--termination-log",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to write the outcome for Kubernetes (the container's terminationMessagePath).",
)
def transfer(
    provider: str,
    provider_file: Path | None,
    ptype: str | None,
    url: str,
    settings: tuple[str, ...],
    secret: str | None,
    hosts: tuple[str, ...],
    host_secrets: tuple[str, ...],
    vm_id: str,
    disk_key: str,
    output: Path,
    checkpoints: Path | None,
    snapshot_id: str,
    round_no: int,
    since: str,
    change_id: str,
    streams: int,
    chunk_mib: int,
    verify: bool,
    max_mibps: float | None,
    progress_seconds: float,
    termination_log: Path | None,
) -> None:
    """Copy disk --disk of VM --vm from the source Provider into --output.

    Prints a JSON progress line every --progress-seconds, resumes from --checkpoints, verifies
    the copy by its digest. Exit codes: 0 copied; 1 failed (another attempt may help); 2 bad
    usage; 4 failed for good (the output is full, or does not read back what was written).

    Warm migration: --snapshot ID --change-id C copies round 0 (the whole disk at the
    snapshot); --round N --snapshot ID --since PREV --change-id C copies round N, only what
    changed between PREV and the snapshot, into the output earlier rounds filled, with the
    same --checkpoints.
    """
    _split(provider, "--provider")
    if provider_file is not None:
        found = _provider_from_file(provider_file)
        ptype = ptype or found["type"]
        url = url or found["url"]
        secret = secret or found["secret"]
        merged = dict(found["settings"])
    else:
        merged = {}
    for item in settings:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: give KEY=VALUE", param_hint="--setting")
        merged[key] = value
    if not ptype:
        raise click.UsageError("give the Provider's --type or --provider-file")
    if round_no and not (snapshot_id and since):
        raise click.UsageError(f"round {round_no} needs --snapshot and --since")
    if since and not round_no:
        raise click.UsageError("--since is for a precopy round (--round 1, 2, ...)")

    def finish(code: int, reason: str, message: str) -> None:
        click.echo(f"error {message}", err=True)
        _write_termination(termination_log, report.failure_message(reason, message))
        sys.exit(code)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # pod deleted: stop at a durable point
    try:
        result = _run(
            provider=provider,
            ptype=ptype,
            url=url,
            settings=merged,
            secret=secret,
            hosts=_pairs(hosts, "--host"),
            host_secrets=_pairs(host_secrets, "--host-secret"),
            vm_id=vm_id,
            disk_key=disk_key,
            output=output,
            checkpoints=checkpoints,
            snapshot_id=snapshot_id,
            round_no=round_no,
            since=since,
            change_id=change_id,
            streams=streams,
            chunk_size=chunk_mib * 1024 * 1024,
            verify=verify,
            max_bps=max_mibps * 1024 * 1024 if max_mibps else None,
            progress_seconds=progress_seconds,
            stop=stop,
        )
    except _Failure as exc:
        finish(exc.code, exc.reason, str(exc))
        return
    text = report.success_message(result)
    click.echo(text)
    _write_termination(termination_log, text)


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key or not value:
            raise click.BadParameter(f"{item!r}: give ID=VALUE", param_hint=option)
        out[key] = value
    return out


class _Failure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


def _run(
    *,
    provider: str,
    ptype: str,
    url: str,
    settings: dict[str, str],
    secret: str | None,
    hosts: dict[str, str],
    host_secrets: dict[str, str],
    vm_id: str,
    disk_key: str,
    output: Path,
    checkpoints: Path | None,
    snapshot_id: str,
    round_no: int,
    since: str,
    change_id: str,
    streams: int,
    chunk_size: int,
    verify: bool,
    max_bps: float | None,
    progress_seconds: float,
    stop: threading.Event,
) -> CopyResult:
    """The copy itself; every failure becomes a _Failure with its exit code and reason."""
    from reconciler.plugin_manager import connect
    from reconciler.progress.store import ProgressStore
    from reconciler.secrets.resolver import SecretError, SecretResolver
    from reconciler.sources import SourceError, warm_source
    from reconciler.transfer.engine import (
        DigestMismatch,
        TransferCanceled,
        TransferError,
        copy_changes,
        copy_disk,
    )
    from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter
    from reconciler.transfer.throttle import ThrottledReader

    values: dict[str, str] = {}
    host_access: dict[str, dict[str, Any]] = {}
    try:
        if secret:
            values = SecretResolver().resolve(*_split(secret, "--secret"))
        for host_id, address in hosts.items():
            ref = host_secrets.get(host_id)
            host_values = SecretResolver().resolve(*_split(ref, "--host-secret")) if ref else {}
            host_access[host_id] = {"ipAddress": address, "secret": host_values}
    except SecretError as exc:
        raise _Failure(report.EXIT_FATAL, report.FAILED, str(exc)) from None
    scratch = None
    if checkpoints is None:
        if _is_device(output):
            scratch = tempfile.TemporaryDirectory()
            checkpoints = Path(scratch.name) / DEFAULT_CHECKPOINTS
            click.echo(f"note {output} is a device and no --checkpoints given: no resume", err=True)
        else:
            checkpoints = output.parent / DEFAULT_CHECKPOINTS
    disk_id = f"{provider}/{vm_id}/{disk_key}"
    conn = reader = writer = verify_reader = base_reader = store = None
    last = 0.0

    def progress(p) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= progress_seconds or p.bytes_done >= p.total:
            last = now
            click.echo(report.progress_line(p))

    try:
        try:
            conn = connect(ptype, url, values, settings, host_access)
            changed = None
            if snapshot_id:
                try:
                    warm = warm_source(conn)
                except SourceError as exc:  # no other attempt can help
                    raise _Failure(
                        report.EXIT_FATAL, report.FAILED, f"--snapshot {snapshot_id}: {exc}"
                    ) from None
                if round_no:  # asked before reading: the areas name the round in the store
                    changed = warm.changed_extents(vm_id, snapshot_id, disk_key, since)
                reader = warm.open_disk(vm_id, disk_key, snapshot_id=snapshot_id)
            else:
                reader = conn.open_disk(vm_id, disk_key)
            if max_bps:
                reader = ThrottledReader(reader, max_bps)
            store = ProgressStore(checkpoints)
            writer = RawDiskWriter(output, reader.size)
            verify_reader = RawDiskReader(output) if verify else None
            if changed is not None:
                # the unchanged rest of a touched chunk is read from the output, not the source
                base_reader = RawDiskReader(output)
                return copy_changes(
                    reader,
                    writer,
                    store,
                    disk_id,
                    changed,
                    round=round_no,
                    change_id=change_id,
                    chunk_size=chunk_size,
                    streams=streams,
                    on_progress=progress,
                    cancel=stop,
                    verify_reader=verify_reader,
                    base_reader=base_reader,
                )
            return copy_disk(
                reader,
                writer,
                store,
                disk_id,
                chunk_size=chunk_size,
                streams=streams,
                on_progress=progress,
                cancel=stop,
                verify_reader=verify_reader,
                change_id=change_id,
            )
        finally:
            for closable in (reader, writer, verify_reader, base_reader, conn, store):
                if closable is not None:
                    closable.close()
            if scratch is not None:
                scratch.cleanup()
    except _Failure:
        raise
    except DigestMismatch as exc:
        _forget(checkpoints, disk_id)
        raise _Failure(report.EXIT_FATAL, report.DIGEST_MISMATCH, str(exc)) from None
    except TransferCanceled as exc:
        raise _Failure(report.EXIT_FAILED, report.CANCELED, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - every failure is reported, none is a traceback
        if disk_full(exc):
            raise _Failure(
                report.EXIT_FATAL, report.DISK_FULL, f"no space left writing {output}: {exc}"
            ) from None
        known = (SourceError, TransferError, OSError, sqlite3.Error)
        what = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        raise _Failure(report.EXIT_FAILED, report.FAILED, what) from None


def _forget(checkpoints: Path, disk_id: str) -> None:
    """A copy that does not read back: nothing recorded may be resumed from."""
    from reconciler.progress.store import ProgressStore

    try:
        store = ProgressStore(checkpoints)
        try:
            store.reset_disk(disk_id)
        finally:
            store.close()
    except (OSError, sqlite3.Error):
        pass  # the reconciler deletes the PVC on a digest mismatch anyway


def _write_termination(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.write_text(text)
    except OSError as exc:
        click.echo(f"note cannot write the termination message to {path}: {exc}", err=True)
