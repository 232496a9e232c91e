"""Typed models of the forklift.konveyor.io/v1beta1 kinds, with the fields of the MTV 2.4 docs.

Unknown fields are refused (``extra="forbid"``) so a typo is an error, not a silent no-op;
``ForkliftController`` is the exception because the operator accepts many tuning keys.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_VERSION = "forklift.konveyor.io/v1beta1"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ObjectMeta(Strict):
    name: str = Field(pattern=DNS1123_SUBDOMAIN, max_length=253)
    namespace: str | None = Field(default=None, pattern=DNS1123_LABEL, max_length=63)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    ownerReferences: list[dict[str, Any]] = Field(default_factory=list)
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    finalizers: list[str] = Field(default_factory=list)


class ObjectRef(Strict):
    """A reference to another object; a missing namespace means the referrer's namespace."""

    name: str
    namespace: str | None = None


class VmRef(Strict):
    """A source object named by ``id`` (MOR / UUID) or by ``name``."""

    id: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> VmRef:
        if not self.id and not self.name:
            raise ValueError("give an id or a name")
        return self

    def label(self) -> str:
        return self.id or self.name or ""


# -- Provider, Host --------------------------------------------------------------------------


class ProviderSpec(Strict):
    # "openshift" for the destination; a source's type is any a loaded source plugin claims
    # (lint reports one no plugin claims, naming the installed types)
    type: str = Field(min_length=1)
    url: str = ""
    secret: ObjectRef | None = None
    settings: dict[str, str] = Field(default_factory=dict)


class HostSpec(Strict):
    provider: ObjectRef
    id: str
    ipAddress: str
    secret: ObjectRef | None = None


# -- maps ------------------------------------------------------------------------------------


class ProviderPair(Strict):
    source: ObjectRef
    destination: ObjectRef


class NetworkDestination(Strict):
    type: Literal["pod", "multus", "ignored"]
    name: str | None = None
    namespace: str | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v  # the MTV docs write "Pod" and "pod"

    @model_validator(mode="after")
    def _multus_needs_name(self) -> NetworkDestination:
        if self.type == "multus" and not self.name:
            raise ValueError("a multus destination needs the NetworkAttachmentDefinition name")
        return self


class NetworkSource(VmRef):
    type: str | None = None


class NetworkPair(Strict):
    source: NetworkSource
    destination: NetworkDestination


class NetworkMapSpec(Strict):
    provider: ProviderPair
    map: list[NetworkPair] = Field(default_factory=list)


class StorageDestination(Strict):
    storageClass: str
    accessMode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] | None = None
    volumeMode: Literal["Filesystem", "Block"] | None = None


class StoragePair(Strict):
    source: VmRef
    destination: StorageDestination


class StorageMapSpec(Strict):
    provider: ProviderPair
    map: list[StoragePair] = Field(default_factory=list)


# -- Hook, Plan, Migration -----------------------------------------------------------------


class HookSpec(Strict):
    image: str = "quay.io/konveyor/hook-runner"
    playbook: str | None = None  # base64, as in MTV
    serviceAccount: str | None = None
    deadline: int | None = Field(default=None, ge=0)  # seconds

    @field_validator("playbook")
    @classmethod
    def _base64(cls, v: str | None) -> str | None:
        if v:
            try:
                base64.b64decode("".join(v.split()), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ValueError(
                    "give the playbook base64-encoded, as MTV does: base64 -w0 playbook.yml"
                ) from None
        return v


class HookRef(Strict):
    hook: ObjectRef
    step: Literal["PreHook", "PostHook"]


class PlanVm(VmRef):
    hooks: list[HookRef] = Field(default_factory=list, max_length=2)


class PlanMaps(Strict):
    network: ObjectRef
    storage: ObjectRef


class PlanSpec(Strict):
    description: str = ""
    warm: bool = False
    archived: bool = False
    # newer Forklift's setting: the guests are prepared for KVM already, run no virt-v2v
    skipGuestConversion: bool = False
    targetNamespace: str = Field(pattern=DNS1123_LABEL, max_length=63)
    transferNetwork: ObjectRef | None = None
    provider: ProviderPair
    map: PlanMaps
    vms: list[PlanVm] = Field(min_length=1)


class MigrationSpec(Strict):
    plan: ObjectRef
    cutover: datetime | None = None

    @field_validator("cutover")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("give the time with a UTC offset, e.g. 2021-04-04T01:23:45+09:00")
        return v

    cancel: list[VmRef] = Field(default_factory=list)


class ForkliftControllerSpec(BaseModel):
    """Operator settings; unknown keys are kept (the operator has many), known ones typed."""

    model_config = ConfigDict(extra="allow")
    controller_precopy_interval: int = Field(default=60, ge=1)
    controller_max_vm_inflight: int = Field(default=20, ge=1)
    controller_snapshot_status_check_rate_seconds: int = Field(default=10, ge=1)
    olm_managed: bool | None = None


class SecretManifest(BaseModel):
    """A core/v1 Secret; only allowed in the repo when the repo config says so (demos)."""

    model_config = ConfigDict(extra="allow")
    type: str = "Opaque"
    stringData: dict[str, str] = Field(default_factory=dict)
    data: dict[str, str] = Field(default_factory=dict)


SPECS: dict[str, type[BaseModel]] = {
    "Provider": ProviderSpec,
    "Host": HostSpec,
    "NetworkMap": NetworkMapSpec,
    "StorageMap": StorageMapSpec,
    "Hook": HookSpec,
    "Plan": PlanSpec,
    "Migration": MigrationSpec,
    "ForkliftController": ForkliftControllerSpec,
}
