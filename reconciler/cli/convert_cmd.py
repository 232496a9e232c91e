"""``mtv-gitops convert-guest``: run virt-v2v in place over one VM's disks.

This is what a kubevirt target's conversion Job runs, with the VM's PVCs attached (a file on a
Filesystem PVC, a block device on a Block one).  It prints virt-v2v's progress lines and writes
its outcome as one JSON line to ``--termination-log``: the findings, why nothing was converted,
or virt-v2v's message with the log's last lines.  Exit codes: 0 converted or nothing to
convert; 4 virt-v2v refused the guest (another attempt will not help).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

EXIT_REFUSED = 4


@click.command("convert-guest")
@click.option("--name", required=True, help="the VM's name")
@click.option("--firmware", type=click.Choice(["bios", "efi"]), default="bios")
@click.option("--memory-mib", type=int, default=1024)
@click.option("--cpus", type=int, default=1)
@click.option("--disk", "disks", multiple=True, required=True, help="a disk image or device")
@click.option("--bus", "buses", multiple=True, help="each disk's source bus, in order")
@click.option("--nic", "nics", multiple=True, help="MAC,model,network of each NIC")
@click.option("--termination-log", type=click.Path(path_type=Path), default=None)
def convert_guest(
    name: str,
    firmware: str,
    memory_mib: int,
    cpus: int,
    disks: tuple[str, ...],
    buses: tuple[str, ...],
    nics: tuple[str, ...],
    termination_log: Path | None,
) -> None:
    """Convert the guest on --disk (in order, boot disk first) in place with virt-v2v."""
    from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec
    from reconciler.convert.kvm import probe
    from reconciler.convert.v2v import ConversionFailed, convert_in_place, holds_os

    def finish(outcome: dict, code: int) -> None:
        line = json.dumps(outcome, sort_keys=True)
        if termination_log is not None:
            termination_log.write_text(line + "\n")
        click.echo(line)
        sys.exit(code)

    paths = [Path(d) for d in disks]
    accel = probe()
    click.echo(f"appliance: {accel.mode} ({accel.reason})", err=True)
    if not holds_os(paths):
        finish(
            {
                "skipped": "no disk of the VM starts with a boot sector or partition table, so "
                "it holds no operating system to convert (synthetic disks); disks kept as copied"
            },
            0,
        )
    spec = GuestSpec(
        name=name,
        firmware=firmware,
        memory_mb=memory_mib,
        cpus=cpus,
        disks=tuple(
            GuestDisk(p, buses[i] if i < len(buses) else "scsi") for i, p in enumerate(paths)
        ),
        nics=tuple(GuestNic(*(n.split(",", 2) + ["", ""])[:3]) for n in nics),
    )
    with tempfile.TemporaryDirectory(prefix="convert-") as work:
        try:
            conversion = convert_in_place(spec, Path(work), on_line=click.echo)
        except ConversionFailed as exc:
            for line in exc.tail:
                click.echo(line, err=True)
            finish({"failed": str(exc), "tail": exc.tail, "accel": accel.mode}, EXIT_REFUSED)
    finish({"conversion": asdict(conversion)}, 0)
