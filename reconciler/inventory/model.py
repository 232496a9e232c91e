"""Provider-neutral inventory records, filled in by source plugins."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Disk:
    """One virtual disk of a source VM."""

    key: str  # stable within the VM, e.g. "disk-0" or a device key
    capacity: int  # bytes, the guest-visible size
    storage: str  # id of the datastore / storage domain / volume type it lives on
    file: str = ""  # where the data is (file name inside an OVA, datastore path...)
    format: str = "raw"
    bus: str = "virtio"


@dataclass(frozen=True)
class Nic:
    """One network interface of a source VM."""

    name: str
    network: str  # id of the source network
    mac: str = ""
    model: str = "virtio"


@dataclass(frozen=True)
class VM:
    """A source VM with what the target needs to recreate it."""

    id: str
    name: str
    cpus: int = 1
    cores_per_socket: int = 1
    memory_mb: int = 1024
    firmware: str = "bios"  # bios | efi
    guest_os: str = ""
    power_state: str = "Off"
    disks: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    host: str = ""
    concerns: tuple[dict, ...] = ()  # problems the plugin saw while reading the VM
    # changed block tracking (vSphere CBT): warm migration needs it; None where not applicable
    change_tracking: bool | None = None


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    # the network this one is part of (an oVirt vNIC profile's network): a map entry naming
    # either one maps the NICs on it
    parent: str = ""


@dataclass(frozen=True)
class Storage:
    id: str
    name: str


@dataclass
class Inventory:
    """A snapshot of one provider's inventory."""

    vms: list[VM] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    storages: list[Storage] = field(default_factory=list)
    # a storage that stands for every disk not mapped through its own (OVA's "Default")
    default_storage: str = ""

    def find_vm(self, id: str | None = None, name: str | None = None) -> VM | None:
        """A VM by id, else by name, as Forklift resolves a Plan's ``vms[]`` entry."""
        for vm in self.vms:
            if id and vm.id == id:
                return vm
        for vm in self.vms:
            if not id and name and vm.name == name:
                return vm
        return None

    def find_network(self, id: str | None = None, name: str | None = None) -> Network | None:
        return next(
            (n for n in self.networks if (id and n.id == id) or (not id and n.name == name)), None
        )

    def find_storage(self, id: str | None = None, name: str | None = None) -> Storage | None:
        return next(
            (s for s in self.storages if (id and s.id == id) or (not id and s.name == name)), None
        )
