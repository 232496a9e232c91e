"""The inventory store keeps each provider's last inventory and writes only what changed."""

from __future__ import annotations

from dataclasses import replace

from reconciler.inventory.model import VM, Disk, Inventory, Network, Nic, Storage
from reconciler.inventory.store import InventoryStore


def inventory(n: int) -> Inventory:
    return Inventory(
        vms=[
            VM(
                f"vm-{i}",
                f"VM {i}",
                cpus=2,
                disks=(Disk("2000", 1 << 30, "datastore-1", "[ds] a.vmdk", "vmdk", "scsi"),),
                nics=(Nic("nic", "network-7", "00:50:56:00:00:01", "vmxnet3"),),
                host="host-21",
                concerns=({"category": "Warning", "label": "x"},),
            )
            for i in range(n)
        ],
        networks=[Network("network-7", "VM Network")],
        storages=[Storage("datastore-1", "LocalDS_0")],
        default_storage="",
    )


def test_save_load_round_trip_and_only_changes_are_written(tmp_path) -> None:
    store = InventoryStore(tmp_path / "inventory.db")
    assert store.load("ns/p") is None
    inv = inventory(50)
    assert store.save("ns/p", inv) == 52
    cached = store.load("ns/p")
    assert cached is not None and cached.read_at
    assert sorted(cached.inventory.vms, key=lambda v: v.id) == sorted(inv.vms, key=lambda v: v.id)
    assert cached.inventory.networks == inv.networks
    assert store.save("ns/p", inv) == 0  # nothing changed: nothing written
    inv.vms[3] = replace(inv.vms[3], name="renamed")
    del inv.vms[7]
    assert store.save("ns/p", inv) == 2  # one modified, one gone
    names = {v.name for v in store.load("ns/p").inventory.vms}
    assert "renamed" in names and "VM 7" not in names and len(names) == 49
    assert store.load("other/p") is None  # providers are kept apart
    store.close()
