"""The ConvertGuest step: virt-v2v over the copied disks, after the copy (a warm VM's final
delta) and before CreateVM.

What virt-v2v found (the guest OS, virtio per device, machine type) is kept in the step, so
status shows it and CreateVM builds the VirtualMachine from it; a finished conversion is never
run again.  A failure ends the VM here with virt-v2v's message and its log's last lines; the
target disks stay for inspection and the source is never touched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reconciler.convert.domain import GuestDisk, GuestNic, GuestSpec
from reconciler.convert.v2v import Conversion, ConversionFailed
from reconciler.pipeline.steps import RunContext, claims_of
from reconciler.planner.model import VmPlan
from reconciler.progress.store import VmProgress
from reconciler.targets.base import ConvertRequest, TargetError

PROGRESS_SAVE_EVERY = 2.0  # seconds between saves of virt-v2v's latest progress line


def guest_spec(vm: VmPlan) -> GuestSpec:
    """The guest as the source's inventory has it (disk paths are the target's to fill)."""
    return GuestSpec(
        name=vm.target_name,
        firmware=vm.firmware or "bios",
        memory_mb=vm.memory_mb,
        cpus=vm.cpus,
        disks=tuple(GuestDisk(Path(), d.bus) for d in vm.disks),
        nics=tuple(GuestNic(n.mac, n.model, n.network) for n in vm.nics if n.mac),
    )


def ensure_guest_converted(ctx: RunContext, vm: VmPlan, rec: VmProgress, step: dict) -> str:
    if ctx.skip_conversion.startswith("not needed:"):
        return ctx.skip_conversion
    if ctx.skip_conversion:
        return f"skipped: {ctx.skip_conversion}"
    if step.get("converted"):
        return step.get("message") or "guest converted"
    convert = getattr(ctx.target, "convert_guest", None)
    if convert is None:
        return (
            f"skipped: guest conversion on {ctx.target.describe()} is not built yet; disks are "
            "copied as-is"
        )
    last_save = 0.0

    def progress(line: str) -> None:
        nonlocal last_save
        step.setdefault("annotations", {})["progress"] = line
        if time.monotonic() - last_save > PROGRESS_SAVE_EVERY:
            last_save = time.monotonic()
            ctx.store.put_vm(rec)

    step["annotations"] = {}
    request = ConvertRequest(
        claims=tuple(claims_of(ctx, vm)),
        guest=guest_spec(vm),
        labels=dict(vm.labels),
        on_progress=progress,
        halt=ctx.halt,
    )
    ctx.store.put_vm(rec)
    try:
        outcome = convert(request)
    except ConversionFailed as exc:
        step["log"] = exc.tail
        if exc.log:
            step["annotations"]["log"] = str(exc.log)
        step["annotations"].pop("progress", None)
        if not step["annotations"]:
            step.pop("annotations")
        raise TargetError(f"{exc}; target disks kept for inspection until a new Migration") from exc
    step["annotations"].pop("progress", None)
    if outcome.conversion is None:
        step.pop("annotations", None)  # no appliance ran
        return f"skipped: {outcome.skipped}"
    c = outcome.conversion
    step["annotations"]["appliance"] = (
        "KVM" if c.accel == "kvm" else "software (TCG: KVM unusable here; several times slower)"
    )
    step["converted"] = True
    step["guest"] = guest_facts(c)
    if outcome.log:
        step["annotations"]["log"] = outcome.log
    return (
        f"converted {c.os} in {c.seconds:.0f}s ({c.accel} appliance): disks on {c.block_bus}, "
        f"network on {c.net_bus}, machine {c.machine}"
    )


def guest_facts(c: Conversion) -> dict[str, Any]:
    """What status and CreateVM keep of a conversion."""
    return {
        "os": c.os,
        "osinfo": c.osinfo,
        "firmware": c.firmware,
        "machine": c.machine,
        "virtio": c.virtio,
        "blockBus": c.block_bus,
        "netBus": c.net_bus,
        "appliance": c.accel,
        "seconds": round(c.seconds, 1),
    }


def converted_guest(rec: VmProgress) -> dict[str, Any] | None:
    """The conversion's findings recorded in the VM's ConvertGuest step, if it converted."""
    for step in rec.steps:
        if step["name"] == "ConvertGuest" and step.get("converted"):
            return step.get("guest")
    return None
