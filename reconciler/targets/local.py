"""The embedded default target: a folder that plays the cluster.

Layout: ``<root>/<namespace>/namespace.yaml``, ``pvcs/<name>.yaml``, ``disks/<name>.img``
(sparse raw images), ``virtualmachines/<name>.yaml``; every manifest is ready for
``kubectl apply`` and each image for ``virtctl image-upload``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.convert import v2v
from reconciler.convert.domain import GuestDisk
from reconciler.hooks.local import run_local
from reconciler.hooks.model import HookOutcome, HookRun
from reconciler.manifests.emit import dump_yaml
from reconciler.targets.base import (
    ConvertOutcome,
    ConvertRequest,
    CopyOutcome,
    CopyRequest,
    DiskClaim,
    Gathered,
    TargetError,
)
from reconciler.targets.schema import check_manifest
from reconciler.transfer import job
from reconciler.transfer.extents import DiskReader, DiskWriter
from reconciler.transfer.rawfile import RawDiskReader, RawDiskWriter


def _dump(path: Path, manifest: dict[str, Any]) -> None:
    """Write atomically: a crash never leaves half a manifest behind.  The temporary file is
    the writing thread's own, as VMs that run at once all ensure their shared namespace."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(dump_yaml(manifest))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing half-made behind
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TargetError(
                f"no space left to write {path}: free space on the file system holding it, "
                "then run again"
            ) from exc
        raise


LABELS_FILE = "labels.json"  # in a conversion folder: the plan, migration and VM it is for


class LocalTarget:
    """A cluster on disk; see the module docstring for the layout."""

    def __init__(self, root: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root.resolve()
        self.clock = clock  # what hooks' deadlines are counted on

    def describe(self) -> str:
        return f"local folder {self.root}"

    def _ns(self, namespace: str) -> Path:
        return self.root / namespace

    def _disk(self, claim: DiskClaim) -> Path:
        return self._ns(claim.namespace) / "disks" / f"{claim.name}.img"

    def vm_names(self, namespace: str) -> set[str]:
        folder = self._ns(namespace) / "virtualmachines"
        return {p.stem for p in folder.glob("*.yaml")} if folder.exists() else set()

    def free_bytes(self, namespace: str) -> int | None:
        path = self.root
        while not path.exists():
            path = path.parent
        return shutil.disk_usage(path).free

    def storage_classes(self) -> tuple[dict[str, str], str]:
        return {}, ""

    def ensure_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        path = self._ns(namespace) / "namespace.yaml"
        if not path.exists():
            meta = {"name": namespace, "labels": labels}
            _dump(path, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    def ensure_disk(self, claim: DiskClaim) -> None:
        check_manifest(claim.manifest)
        _dump(self._ns(claim.namespace) / "pvcs" / f"{claim.name}.yaml", claim.manifest)
        disk = self._disk(claim)
        disk.parent.mkdir(parents=True, exist_ok=True)
        if disk.exists() and not disk.is_file():
            raise TargetError(f"disk image {disk} exists but is not a regular file; remove it")
        if disk.exists() and disk.stat().st_size > claim.size:
            raise TargetError(f"disk image {disk} is larger than the source disk; remove it")
        if not disk.exists():
            with disk.open("wb") as f:
                f.truncate(claim.size)

    def disk_exists(self, claim: DiskClaim) -> bool:
        pvc = self._ns(claim.namespace) / "pvcs" / f"{claim.name}.yaml"
        return pvc.exists() and self._disk(claim).is_file()

    def disk_usage(self, claim: DiskClaim) -> int | None:
        """The image's allocated blocks: holes take no space."""
        try:
            return self._disk(claim).stat().st_blocks * 512
        except FileNotFoundError:
            return None

    def open_writer(self, claim: DiskClaim) -> DiskWriter:
        return RawDiskWriter(self._disk(claim), claim.size)

    def open_reader(self, claim: DiskClaim) -> DiskReader:
        return RawDiskReader(self._disk(claim))

    def copy_disk(self, request: CopyRequest) -> CopyOutcome:
        """Copy in this process, with the pass's own connection to the source: the full copy,
        or a warm migration's precopy round (``request.copy.round``)."""
        reader: DiskReader = request.open_source()
        writer = verify = base = None
        try:
            writer = self.open_writer(request.claim)
            verify = self.open_reader(request.claim) if request.copy.verify else None
            if request.copy.round:
                base = self.open_reader(request.claim)  # a chunk's unchanged rest, read here
            result = job.copy(
                request.copy,
                reader,
                writer,
                request.store,
                request.disk_id,
                changed=request.changed,
                on_progress=request.on_progress,
                cancel=request.halt,
                verify_reader=verify,
                base_reader=base,
                budget=request.budget,
            )
        finally:
            for closable in (reader, writer, verify, base):
                if closable is not None:
                    closable.close()
        return CopyOutcome(result)

    def convert_guest(self, request: ConvertRequest) -> ConvertOutcome:
        """virt-v2v-in-place on the raw images themselves; its domain XML and whole log stay
        in ``<namespace>/conversions/<vm>/``."""
        paths = [self._disk(c) for c in request.claims]
        if not v2v.holds_os(paths):
            return ConvertOutcome(
                None,
                skipped="no disk of the VM starts with a boot sector or partition table, so "
                "it holds no operating system to convert (synthetic disks); disks kept as "
                "copied",
            )
        guest = request.guest
        disks = tuple(
            GuestDisk(path, d.bus, "raw") for path, d in zip(paths, guest.disks, strict=True)
        )
        workdir = self._ns(request.claims[0].namespace) / "conversions" / guest.name
        workdir.mkdir(parents=True, exist_ok=True)
        # whose conversion this is, so a plan's archive or deletion finds what it left
        (workdir / LABELS_FILE).write_text(json.dumps(request.labels, sort_keys=True))
        spec = replace(guest, disks=disks)
        conversion = v2v.convert_in_place(spec, workdir, on_line=request.on_progress)
        return ConvertOutcome(conversion, log=str(workdir / "virt-v2v.log"))

    def release_disk(self, claim: DiskClaim) -> None:
        """Nothing is kept beside a local disk: its checkpoints are the reconciler's."""

    def delete_disk(self, claim: DiskClaim) -> None:
        self._disk(claim).unlink(missing_ok=True)
        (self._ns(claim.namespace) / "pvcs" / f"{claim.name}.yaml").unlink(missing_ok=True)

    def delete_vm(self, namespace: str, name: str) -> None:
        (self._ns(namespace) / "virtualmachines" / f"{name}.yaml").unlink(missing_ok=True)

    def cleanup(self, namespace: str, labels: dict[str, str]) -> int:
        """Remove the PVC manifests (with their images) and VirtualMachines that carry all
        ``labels`` (never everything: an empty selector removes nothing)."""
        if not labels:
            return 0
        removed = 0
        ns = self._ns(namespace)
        for kind in ("pvcs", "virtualmachines"):
            for path in sorted((ns / kind).glob("*.yaml")) if (ns / kind).exists() else []:
                meta = (YAML(typ="safe").load(path.read_text()) or {}).get("metadata", {})
                have = meta.get("labels") or {}
                if all(have.get(k) == v for k, v in labels.items()):
                    if kind == "pvcs":
                        (ns / "disks" / f"{path.stem}.img").unlink(missing_ok=True)
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def gather(self, namespace: str, labels: dict[str, str], since: float | None) -> Gathered:
        """The PVC and VirtualMachine manifests that carry all ``labels`` (no pods here)."""
        out = Gathered()
        ns = self._ns(namespace)
        for kind in ("pvcs", "virtualmachines"):
            for path in sorted((ns / kind).glob("*.yaml")) if (ns / kind).exists() else []:
                doc = YAML(typ="safe").load(path.read_text()) or {}
                have = (doc.get("metadata") or {}).get("labels") or {}
                if labels and all(have.get(k) == v for k, v in labels.items()):
                    out.objects.append(doc)
        return out

    def cleanup_temporaries(self, namespace: str, labels: dict[str, str]) -> int:
        """Conversion folders (domain XML and virt-v2v log, kept for inspection) of the VM
        that carries ``labels``. Nothing else temporary lives here: copies run in this
        process, hooks in temporary folders removed when they end, checkpoints in the
        reconciler's store."""
        if not labels:
            return 0
        removed = 0
        for marker in sorted((self._ns(namespace) / "conversions").glob(f"*/{LABELS_FILE}")):
            try:
                have = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue
            if all(have.get(k) == v for k, v in labels.items()):
                shutil.rmtree(marker.parent, ignore_errors=True)
                removed += 1
        return removed

    def ensure_vm(self, manifest: dict[str, Any]) -> None:
        check_manifest(manifest)
        meta = manifest["metadata"]
        _dump(self._ns(meta["namespace"]) / "virtualmachines" / f"{meta['name']}.yaml", manifest)

    def get_vm(self, namespace: str, name: str) -> dict[str, Any] | None:
        path = self._ns(namespace) / "virtualmachines" / f"{name}.yaml"
        if not path.exists():
            return None
        return YAML(typ="safe").load(path.read_text())

    def locate(self, namespace: str, name: str) -> dict[str, str]:
        ns = self._ns(namespace)
        return {
            "manifest": str(ns / "virtualmachines" / f"{name}.yaml"),
            "pvcs": str(ns / "pvcs"),
            "disks": str(ns / "disks"),
        }

    def run_hook(self, run: HookRun) -> HookOutcome:
        """On this machine (:mod:`reconciler.hooks.local`): nothing outlives the process that
        ran it, so a killed pass's hook runs again.  ``MTV_GITOPS_LOCAL_CLUSTER`` tells a
        playbook the folder that plays the cluster."""
        return run_local(run, self.clock, {"MTV_GITOPS_LOCAL_CLUSTER": str(self.root)})
