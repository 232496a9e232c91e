"""Phase names and descriptions of the cold and warm itineraries, as Forklift names them."""

from __future__ import annotations

from datetime import UTC, datetime

PENDING, RUNNING, COMPLETED, SKIPPED, FAILED = (
    "Pending",
    "Running",
    "Completed",
    "Skipped",
    "Failed",
)

COLD = (
    ("PreHook", "Run the PreHook"),
    ("StorePowerState", "Store the source VM power state"),
    ("PowerOffSource", "Power off the source VM"),
    ("WaitForPowerOff", "Wait for the source VM to be off"),
    ("AllocateDisks", "Create the target namespace, PVCs and disks"),
    ("CopyDisks", "Copy the disks"),
    ("ConvertGuest", "Convert the guest (virt-v2v)"),
    ("CreateVM", "Create the VirtualMachine"),
    ("PostHook", "Run the PostHook"),
)

WARM = (
    ("PreHook", "Run the PreHook"),
    ("CreateInitialSnapshot", "Create the initial snapshot of the running source VM"),
    ("AllocateDisks", "Create the target namespace, PVCs and disks"),
    ("CopyDisks", "Copy the disks as the initial snapshot holds them"),
    ("Precopy", "Copy the changed extents every precopy interval until cutover"),
    ("PowerOffSource", "Power off the source VM"),
    ("WaitForPowerOff", "Wait for the source VM to be off"),
    ("CreateFinalSnapshot", "Remove the previous snapshot and create the final one"),
    ("CopyFinalDelta", "Copy the extents changed since the last precopy round"),
    ("RemoveFinalSnapshot", "Remove the final snapshot"),
    ("ConvertGuest", "Convert the guest (virt-v2v)"),
    ("CreateVM", "Create the VirtualMachine"),
    ("PostHook", "Run the PostHook"),
)
COPYING_PAUSED = "CopyingPaused"  # MTV's phase of a warm VM waiting for its next precopy

NOT_BUILT = {
    "ConvertGuest": "skipped: guest conversion (virt-v2v) is not built yet; disks are copied as-is",
}


def now() -> str:
    """The time now, as status shows it (RFC 3339, UTC, whole seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def itinerary(hook_steps: set[str], warm: bool = False) -> list[dict]:
    """Fresh pipeline steps; hook steps appear only when the plan defines the hook, as in MTV."""
    steps = []
    for name, desc in WARM if warm else COLD:
        if name in ("PreHook", "PostHook") and name not in hook_steps:
            continue
        steps.append({"name": name, "description": desc, "phase": PENDING})
    return steps
