"""What the planner decides: per VM, the target shape; per plan, readiness and work."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class NicPlan:
    name: str
    mac: str
    model: str
    network: str  # source network id
    dest_type: str  # pod | multus | ignored
    nad: str = ""  # namespace/name of the NetworkAttachmentDefinition for multus


@dataclass(frozen=True)
class DiskPlan:
    key: str
    capacity: int
    pvc_name: str
    storage_class: str
    access_mode: str  # "" when the StorageMap leaves it to the storage class's default
    volume_mode: str  # idem
    bus: str = "virtio"


@dataclass(frozen=True)
class VmPlan:
    """A source VM resolved against the maps: everything needed to create it on the target."""

    vm_id: str
    source_name: str
    target_name: str
    namespace: str
    cpus: int
    cores_per_socket: int
    memory_mb: int
    firmware: str
    power_state: str
    guest_os: str
    disks: tuple[DiskPlan, ...]
    nics: tuple[NicPlan, ...]
    labels: dict[str, str] = field(default_factory=dict)
    hooks: tuple[tuple[str, str], ...] = ()  # (step, "ns/name")
    host: str = ""  # the source host (vSphere: the ESXi host's MOR id); "" when none


@dataclass(frozen=True)
class Condition:
    """A Forklift-shaped condition."""

    type: str
    status: str  # "True" | "False"
    category: str  # Critical, Error, Warning, Advisory, Required
    message: str
    reason: str = ""
    items: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        d = {"type": self.type, "status": self.status, "category": self.category}
        if self.reason:
            d["reason"] = self.reason
        d["message"] = self.message
        if self.items:
            d["items"] = list(self.items)
        return d


@dataclass
class PlanDecision:
    """The planner's verdict on one Plan for this pass."""

    namespace: str
    name: str
    source: tuple[str, str] = ("", "")  # (namespace, name) of the source Provider
    destination: tuple[str, str] = ("", "")  # (namespace, name) of the destination Provider
    conditions: list[Condition] = field(default_factory=list)
    vms: list[VmPlan] = field(default_factory=list)
    vm_errors: dict[str, str] = field(default_factory=dict)  # plan vm label -> why unresolved
    migration: str = ""  # name of the Migration to run now, "" if none
    run_vms: list[str] = field(default_factory=list)  # vm ids to (re)run under that migration
    canceled_vms: list[str] = field(default_factory=list)
    skipped_migrations: dict[str, str] = field(default_factory=dict)  # migration -> why waiting
    # spec.archived: read-only; its Migrations not run yet are refused (migration -> why)
    archived: bool = False
    refused_migrations: dict[str, str] = field(default_factory=dict)
    concerns: dict[str, tuple[dict, ...]] = field(default_factory=dict)  # vm id -> rule concerns
    # ForkliftController spec.controller_max_vm_inflight, and whether it counts per source host
    max_vm_inflight: int = 20
    per_host: bool = False
    # warm migration: the Plan's spec.warm, the precopy interval (ForkliftController
    # controller_precopy_interval, in seconds), the running Migration's spec.cutover and file
    warm: bool = False
    precopy_interval: float = 3600.0
    cutover: datetime | None = None
    migration_file: str = ""
    migration_namespace: str = ""
    # why ConvertGuest is skipped for this plan's VMs ("" when their guests are converted)
    skip_conversion: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ready(self) -> bool:
        return not any(c.category == "Critical" for c in self.conditions)
