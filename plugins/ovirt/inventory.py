"""The engine's inventory, read through ovirtsdk4 and kept up to date from the engine's events.

A full read lists data centers, clusters, hosts, storage domains, networks, vNIC profiles and
disks once, then each VM with its disk attachments, NICs, snapshots, watchdogs, host devices
and NUMA nodes. Later reads ask only for the events since the last one seen
(``GET /events?from=<id>``): the VMs those events name are read again (the VM, its
sub-collections and its disks); an event that names no VM (a network, a storage domain, a
host changed) or a gap in the event ids (the engine's audit log was trimmed) makes the next
read a full one. The engine logs an event for every change this relies on (a VM added,
removed, edited, started or stopped; a disk added, moved or transferred); a change that logs
none is seen at the next full read, which a new connection always makes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class VmRecord:
    vm: Any
    attachments: list[Any] = field(default_factory=list)
    nics: list[Any] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)
    watchdogs: list[Any] = field(default_factory=list)
    host_devices: list[Any] = field(default_factory=list)
    numa_nodes: list[Any] = field(default_factory=list)


@dataclass
class Snapshot:
    """Everything read, by id."""

    vms: dict[str, VmRecord] = field(default_factory=dict)
    disks: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, Any] = field(default_factory=dict)
    networks: dict[str, Any] = field(default_factory=dict)
    storage_domains: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)
    hosts: dict[str, Any] = field(default_factory=dict)
    datacenters: dict[str, Any] = field(default_factory=dict)
    last_event: int = 0


def _by_id(items: list[Any]) -> dict[str, Any]:
    return {x.id: x for x in items or ()}


class InventoryCache:
    """A full read first, then the VMs the engine's events name (see the module doc)."""

    def __init__(self, system: Any) -> None:
        self._system = system  # () -> ovirtsdk4 SystemService (a session logged in again)
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()
        self.full_reads = 0  # how many full reads were made (the tests count them)
        self.vm_reads = 0  # how many VMs were read again from events

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._snap is None:
                self._snap = self._full()
            else:
                self._snap = self._refresh(self._snap)
            return self._snap

    def invalidate(self) -> None:
        with self._lock:
            self._snap = None

    def _last_event(self, system: Any) -> int:
        events = system.events_service().list(max=1)
        return max((int(e.id) for e in events or ()), default=0)

    def _full(self) -> Snapshot:
        system = self._system()
        self.full_reads += 1
        last = self._last_event(system)  # before reading: a change after it is seen next time
        snap = Snapshot(
            disks=_by_id(system.disks_service().list()),
            profiles=_by_id(system.vnic_profiles_service().list()),
            networks=_by_id(system.networks_service().list()),
            storage_domains=_by_id(system.storage_domains_service().list()),
            clusters=_by_id(system.clusters_service().list()),
            hosts=_by_id(system.hosts_service().list()),
            datacenters=_by_id(system.data_centers_service().list()),
            last_event=last,
        )
        vms = system.vms_service()
        for vm in vms.list():
            snap.vms[vm.id] = self._sub(vms.vm_service(vm.id), vm)
        return snap

    def _sub(self, service: Any, vm: Any) -> VmRecord:
        return VmRecord(
            vm,
            attachments=list(service.disk_attachments_service().list()),
            nics=list(service.nics_service().list()),
            snapshots=list(service.snapshots_service().list()),
            watchdogs=list(service.watchdogs_service().list()),
            host_devices=list(service.host_devices_service().list()),
            numa_nodes=list(service.numa_nodes_service().list()),
        )

    def _refresh(self, snap: Snapshot) -> Snapshot:
        import ovirtsdk4 as sdk

        system = self._system()
        events = list(system.events_service().list(from_=snap.last_event) or ())
        if not events:
            return snap
        ids = sorted(int(e.id) for e in events)
        if ids[0] != snap.last_event + 1 or ids != list(range(ids[0], ids[-1] + 1)):
            return self._full()  # a gap: events were trimmed or hidden from this user
        vm_ids = {e.vm.id for e in events if e.vm is not None and e.vm.id}
        if any(e.vm is None or not e.vm.id for e in events):
            return self._full()
        vms = system.vms_service()
        disks = system.disks_service()
        for vm_id in sorted(vm_ids):
            self.vm_reads += 1
            service = vms.vm_service(vm_id)
            try:
                record = self._sub(service, service.get())
            except sdk.NotFoundError:
                gone = snap.vms.pop(vm_id, None)
                for a in gone.attachments if gone else ():
                    snap.disks.pop(a.disk.id, None)
                continue
            for a in record.attachments:
                try:
                    snap.disks[a.disk.id] = disks.disk_service(a.disk.id).get()
                except sdk.NotFoundError:
                    snap.disks.pop(a.disk.id, None)
            snap.vms[vm_id] = record
        snap.last_event = ids[-1]
        return snap
