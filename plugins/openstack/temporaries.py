"""The temporary snapshot, volume and image through which a Cinder volume is read.

Forklift's flow: a snapshot of the volume (forced: it is attached), a volume from the
snapshot, the ``os_glance*`` keys dropped from that volume's image metadata (Cinder bug
1945500), the volume uploaded to an image (``os-volume_upload_image``), the image read from
Glance. All three are named ``mtv-gitops-<server id>-<volume id>`` and the snapshot and volume
carry ``forklift_original_volume_id`` and ``mtv_gitops_vm`` in their metadata: a pass killed
midway leaves them where the next pass finds them (by name, then checked by metadata; a
metadata filter in the list call matches nothing), reuses what is complete and deletes them
when the VM's disks are copied or the VM ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from reconciler.sources import SourceError

log = logging.getLogger(__name__)
PREFIX = "mtv-gitops-"
VM_KEY = "mtv_gitops_vm"
VOLUME_KEY = "forklift_original_volume_id"
_IMAGE_BUSY = ("queued", "saving", "importing", "uploading")


def temporary_name(vm_id: str, volume_id: str) -> str:
    return f"{PREFIX}{vm_id}-{volume_id}"


class Temporaries:
    """Make, find and delete one project's temporaries (the caller's project owns them)."""

    def __init__(self, conn: Any, image_format: str = "qcow2", wait_seconds: float = 1800) -> None:
        self.conn = conn
        self.image_format = image_format
        self.wait_seconds = wait_seconds

    # -- making ---------------------------------------------------------------------------

    def ensure_image(self, vm_id: str, volume: dict) -> Any:
        """The active image holding the volume's content now, made or found again."""
        name = temporary_name(vm_id, volume["id"])
        meta = {VM_KEY: vm_id, VOLUME_KEY: volume["id"]}
        image = self._image(name)
        if image is not None and image.status == "active":
            return image
        snapshot = self._ensure_snapshot(name, volume, meta)
        temp = self._ensure_volume(name, snapshot, volume, meta)
        if image is not None and image.status in _IMAGE_BUSY and temp.status == "uploading":
            return self._wait_image(image.id, temp.id)  # a killed pass's upload, still running
        if image is not None:  # an upload that failed or was cut off: start it again
            self._delete_image(image.id)
        glance_keys = [k for k in (temp.volume_image_metadata or {}) if k.startswith("os_glance")]
        if glance_keys:
            self.conn.block_storage.delete_volume_image_metadata(temp, keys=glance_keys)
        answer = self.conn.block_storage.upload_volume_to_image(
            temp, name, force=True, disk_format=self.image_format, container_format="bare"
        )
        return self._wait_image(answer["image_id"], temp.id)

    def find_image(self, vm_id: str, volume: dict) -> Any:
        """The active image :meth:`ensure_image` made of the volume, without making anything:
        what a reader elsewhere (a transfer Job) reads; a SourceError when it is not there."""
        name = temporary_name(vm_id, volume["id"])
        image = self._image(name)
        if image is None or image.status != "active":
            state = "missing" if image is None else image.status
            raise SourceError(
                f"the temporary image {name} of volume {volume.get('name') or volume['id']} is "
                f"{state} in Glance: the reconciler makes it before the copy and deletes it when "
                "the VM ends; push a new Migration to make it again"
            )
        return image

    def _image(self, name: str) -> Any:
        found = [i for i in self.conn.image.images(name=name) if i.name == name]
        for extra in found[1:]:
            self._delete_image(extra.id)
        return found[0] if found else None

    def _ensure_snapshot(self, name: str, volume: dict, meta: dict[str, str]) -> Any:
        bs = self.conn.block_storage
        found = [
            s
            for s in bs.snapshots(details=True, name=name)
            if s.name == name and (s.metadata or {}).get(VOLUME_KEY) == volume["id"]
        ]
        snap = next((s for s in found if s.status not in ("error", "deleting")), None)
        if snap is None:
            snap = bs.create_snapshot(
                volume_id=volume["id"],
                name=name,
                force=True,
                metadata=meta,
                description="mtv-gitops: a migration reads the volume through this snapshot",
            )
        return self._wait(lambda: bs.get_snapshot(snap.id), "available", f"snapshot {name}")

    def _ensure_volume(self, name: str, snapshot: Any, volume: dict, meta: dict[str, str]) -> Any:
        bs = self.conn.block_storage
        found = [
            v
            for v in bs.volumes(details=True, name=name)
            if v.name == name and (v.metadata or {}).get(VOLUME_KEY) == volume["id"]
        ]
        temp = next((v for v in found if v.status not in ("error", "deleting")), None)
        if temp is None:
            temp = bs.create_volume(
                name=name,
                snapshot_id=snapshot.id,
                size=volume.get("size"),
                metadata=meta,
                description="mtv-gitops: a migration uploads this volume to Glance",
            )
        return self._wait(
            lambda: bs.get_volume(temp.id), ("available", "uploading"), f"volume {name}"
        )

    def _wait_image(self, image_id: str, volume_id: str) -> Any:
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.2
        while True:
            image = self.conn.image.get_image(image_id)
            if image.status == "active":
                return image
            if image.status in ("killed", "deleted", "deactivated"):
                raise SourceError(
                    f"the upload to Glance of image {image.name} ended {image.status}"
                )
            vol = self.conn.block_storage.get_volume(volume_id)
            if vol.status == "error":
                raise SourceError(
                    f"Cinder failed to upload volume {vol.name} to Glance (the volume is in "
                    "error); the temporaries are deleted and the next migration tries again"
                )
            if time.monotonic() > deadline:
                raise SourceError(f"image {image.name} not active after {self.wait_seconds:.0f}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    def _wait(self, get: Callable[[], Any], status: str | tuple[str, ...], what: str) -> Any:
        wanted = (status,) if isinstance(status, str) else status
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.2
        while True:
            res = get()
            if res.status in wanted:
                return res
            if res.status in ("error", "error_deleting"):
                raise SourceError(f"{what} is in {res.status} in Cinder")
            if time.monotonic() > deadline:
                raise SourceError(f"{what} is {res.status}, not {wanted[0]}, after waiting")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    # -- finding and deleting --------------------------------------------------------------

    def _mine(self, vm_id: str) -> tuple[list[Any], list[Any], list[Any]]:
        prefix = f"{PREFIX}{vm_id}-" if vm_id else PREFIX
        bs = self.conn.block_storage
        images = [i for i in self.conn.image.images() if (i.name or "").startswith(prefix)]
        volumes = [
            v
            for v in bs.volumes(details=True)
            if (v.name or "").startswith(prefix) and VM_KEY in (v.metadata or {})
        ]
        snapshots = [
            s
            for s in bs.snapshots(details=True)
            if (s.name or "").startswith(prefix) and VM_KEY in (s.metadata or {})
        ]
        return images, volumes, snapshots

    def leftovers(self, vm_id: str = "") -> list[str]:
        images, volumes, snapshots = self._mine(vm_id)
        return sorted(
            [f"image {i.name}" for i in images]
            + [f"volume {v.name}" for v in volumes]
            + [f"snapshot {s.name}" for s in snapshots]
        )

    def release(self, vm_id: str) -> None:
        """Delete the VM's images, then volumes (once no upload runs), then snapshots (once no
        volume depends on them); absent ones are fine."""
        bs = self.conn.block_storage
        images, volumes, snapshots = self._mine(vm_id)
        for image in images:
            self._delete_image(image.id)
        for vol in volumes:
            current = (
                self._wait(
                    lambda v=vol: bs.get_volume(v.id),
                    ("available", "error"),
                    f"volume {vol.name}",
                )
                if vol.status not in ("available", "error")
                else vol
            )
            bs.delete_volume(current, ignore_missing=True)
        for vol in volumes:
            self._gone(lambda v=vol: bs.find_volume(v.id, ignore_missing=True))
        for snap in snapshots:
            bs.delete_snapshot(snap, ignore_missing=True)
        for snap in snapshots:
            self._gone(lambda s=snap: bs.find_snapshot(s.id, ignore_missing=True))

    def _delete_image(self, image_id: str) -> None:
        self.conn.image.delete_image(image_id, ignore_missing=True)

    def _gone(self, find: Callable[[], Any]) -> None:
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.2
        while find() is not None:
            if time.monotonic() > deadline:
                raise SourceError("a temporary volume or snapshot was not deleted in time")
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
