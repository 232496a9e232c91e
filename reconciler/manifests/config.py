"""The repo's own settings file, ``.mtv-gitops.yaml`` at the repo root (optional)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML

from reconciler.manifests.errors import Location, ManifestError
from reconciler.secrets.yaml_errors import describe as describe_yaml_error

CONFIG_FILE = ".mtv-gitops.yaml"


class TransferSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    streams: int = Field(default=4, ge=1, le=64)
    chunkMiB: int = Field(default=4, ge=1, le=64)
    verify: bool = True
    maxMiBps: float | None = Field(default=None, gt=0)  # bandwidth cap per disk copy
    # a VM's disks copied at once (on the kubevirt target: its transfer Jobs that run together)
    parallelDisks: int = Field(default=4, ge=1, le=64)


class ValidationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeoutSeconds: float = Field(default=5.0, gt=0, le=300)  # per VM; a rule that loops stops


class TargetSettings(BaseModel):
    """How PVCs are sized: CDI's filesystem overhead (the MTV docs advise 0.1 or more for EXT4
    on block storage), globally and per storage class."""

    model_config = ConfigDict(extra="forbid")
    filesystemOverhead: float = Field(default=0.055, ge=0, lt=1)
    filesystemOverheadByStorageClass: dict[str, float] = Field(default_factory=dict)


class WarmSettings(BaseModel):
    """Warm migration: ``precopyIntervalSeconds`` overrides the ForkliftController's
    ``controller_precopy_interval`` (minutes), e.g. seconds for tests and demos."""

    model_config = ConfigDict(extra="forbid")
    precopyIntervalSeconds: float | None = Field(default=None, gt=0)


class RepoConfig(BaseModel):
    """Settings that belong to the repo rather than to one migration."""

    model_config = ConfigDict(extra="forbid")
    defaultNamespace: str = "openshift-mtv"
    allowPlaintextSecrets: bool = False
    authorName: str = "mtv-gitops"
    authorEmail: str = "mtv-gitops@localhost"
    statusCommitSeconds: float = Field(default=10.0, ge=0)
    transfer: TransferSettings = Field(default_factory=TransferSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
    warm: WarmSettings = Field(default_factory=WarmSettings)


def load_config(root: Path) -> tuple[RepoConfig, list[ManifestError]]:
    """Read the config; a broken config is reported and the defaults are used."""
    path = root / CONFIG_FILE
    if not path.exists():
        return RepoConfig(), []
    try:
        data = YAML(typ="safe").load(path.read_text()) or {}
    except Exception as exc:  # noqa: BLE001 - told without the values it was reading
        problem = describe_yaml_error(exc)
        where = Location(CONFIG_FILE, problem.line, problem.column)
        return RepoConfig(), [ManifestError(where, f"invalid repo config: {problem.message}")]
    try:
        return RepoConfig.model_validate(data), []
    except (ValidationError, TypeError) as exc:
        msg = str(exc).replace("\n", " ")
        return RepoConfig(), [ManifestError(Location(CONFIG_FILE), f"invalid repo config: {msg}")]
