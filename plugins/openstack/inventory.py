"""OpenStack inventory in bulk: one list call per kind, servers refreshed by ``changes-since``.

Only Nova's server list takes ``changes-since`` and reports deletions through it. Cinder's and
Neutron's lists can be filtered by ``updated_at`` (Cinder 3.60) or revision, but neither says
what was deleted since, so volumes, ports and networks are listed whole on every pass: one
call each, and a deleted volume or port is never kept as if it still existed.

Everything is read through openstacksdk's resource classes and kept as their ``to_dict()``
(the SDK's attribute names: ``is_bootable``, ``attached_volumes``, ``mac_address`` ...). A
member user sees no hypervisor host (``OS-EXT-SRV-ATTR:host``) nor port binding host, so
nothing here needs one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# image properties Forklift's rules read (the rest of a volume's image metadata is Glance's)
_NOT_PROPERTIES = {
    "image_id",
    "image_name",
    "checksum",
    "size",
    "min_disk",
    "min_ram",
    "container_format",
    "disk_format",
}


@dataclass
class Snapshot:
    """The project's inventory: each kind by id, as the SDK's ``to_dict()``."""

    servers: dict[str, dict] = field(default_factory=dict)
    flavors: dict[str, dict] = field(default_factory=dict)
    images: dict[str, dict] = field(default_factory=dict)
    volumes: dict[str, dict] = field(default_factory=dict)
    types: dict[str, dict] = field(default_factory=dict)
    networks: dict[str, dict] = field(default_factory=dict)
    subnets: dict[str, dict] = field(default_factory=dict)
    ports: dict[str, dict] = field(default_factory=dict)
    security_groups: dict[str, dict] = field(default_factory=dict)
    # the projects the user may scope to (Keystone's /v3/auth/projects), the Provider's one
    # among them: its servers are the ones read, as its secret's projectName scopes the login
    projects: dict[str, dict] = field(default_factory=dict)
    project: dict[str, str] = field(default_factory=dict)

    def flavor_of(self, server: dict) -> dict:
        """The server's flavor: embedded from compute 2.47 on (no id), else by its id."""
        flavor = dict(server.get("flavor") or {})
        if flavor.get("id") and not flavor.get("vcpus"):
            flavor = dict(self.flavors.get(flavor["id"], flavor))
        return flavor

    def server_volumes(self, server: dict) -> list[dict]:
        """The volumes attached to the server, in boot order: by their device (vda first)."""
        found = []
        for ref in server.get("attached_volumes") or []:
            vol = self.volumes.get(ref.get("id", ""))
            if vol is None:
                continue
            device = next(
                (
                    a.get("device") or ""
                    for a in vol.get("attachments") or []
                    if a.get("server_id") == server["id"]
                ),
                "",
            )
            found.append((device == "", len(device), device, vol))
        return [v for *_, v in sorted(found, key=lambda t: t[:3])]

    def device_of(self, server: dict, volume: dict) -> str:
        return next(
            (
                a.get("device") or ""
                for a in volume.get("attachments") or []
                if a.get("server_id") == server["id"]
            ),
            "",
        )

    def type_id(self, volume: dict) -> str:
        """The id of the volume's type (Cinder names the type in ``volume_type``)."""
        name = volume.get("volume_type") or ""
        return next((t["id"] for t in self.types.values() if t.get("name") == name), name)

    def server_ports(self, server: dict) -> list[dict]:
        """The server's ports in Nova's order of its addresses (then by creation)."""
        macs = [
            a.get("OS-EXT-IPS-MAC:mac_addr", "")
            for addrs in (server.get("addresses") or {}).values()
            for a in addrs
        ]
        order = {mac: i for i, mac in reversed(list(enumerate(macs)))}
        return sorted(
            (p for p in self.ports.values() if p.get("device_id") == server["id"]),
            key=lambda p: (
                order.get(p.get("mac_address", ""), len(order)),
                p.get("created_at") or "",
                p["id"],
            ),
        )

    def image_id(self, server: dict) -> str:
        """The image the server was built from: its own image when booted from one, else the
        bootable volume's ``volume_image_metadata.image_id`` (as Forklift reads it)."""
        image = server.get("image") or {}
        if isinstance(image, dict) and image.get("id"):
            return image["id"]
        for vol in self.server_volumes(server):
            meta = vol.get("volume_image_metadata") or {}
            if vol.get("is_bootable") and meta.get("image_id"):
                return meta["image_id"]
        return ""

    def image_properties(self, server: dict) -> dict[str, str]:
        image = server.get("image") or {}
        if isinstance(image, dict) and image.get("id"):
            img = self.images.get(image["id"]) or {}
            return {k: str(v) for k, v in (img.get("properties") or {}).items()}
        for vol in self.server_volumes(server):
            if vol.get("is_bootable"):
                meta = vol.get("volume_image_metadata") or {}
                return {k: str(v) for k, v in meta.items() if k not in _NOT_PROPERTIES}
        return {}


def _by_id(resources: Any) -> dict[str, dict]:
    return {r.id: r.to_dict(computed=False) for r in resources}


class InventoryCache:
    """The project's inventory, the servers kept current with ``changes-since``: a server
    Nova reports changed (or DELETED) since the last read replaces (or leaves) the cache."""

    def __init__(self, conn: Any, skew: timedelta = timedelta(seconds=5)) -> None:
        self.conn = conn
        self.skew = skew
        self.servers: dict[str, dict] = {}
        self.since: datetime | None = None
        self.full_reads = 0
        self.incremental_reads = 0

    def refresh(self) -> Snapshot:
        c = self.conn
        started = datetime.now(UTC)
        if self.since is None:
            self.servers = _by_id(c.compute.servers(details=True))
            self.full_reads += 1
        else:
            since = (self.since - self.skew).strftime("%Y-%m-%dT%H:%M:%SZ")
            for server in c.compute.servers(details=True, changes_since=since):
                if str(server.status).upper() == "DELETED":
                    self.servers.pop(server.id, None)
                else:
                    self.servers[server.id] = server.to_dict(computed=False)
            self.incremental_reads += 1
        self.since = started
        snap = Snapshot(
            servers=dict(self.servers),
            flavors=_by_id(c.compute.flavors(details=True)),
            volumes=_by_id(c.block_storage.volumes(details=True)),
            types=_by_id(c.block_storage.types()),
            networks=_by_id(c.network.networks()),
            subnets=_by_id(c.network.subnets()),
            ports=_by_id(c.network.ports()),
            security_groups=_by_id(c.network.security_groups()),
        )
        wanted = {
            s["image"]["id"]
            for s in snap.servers.values()
            if isinstance(s.get("image"), dict) and s["image"].get("id")
        }
        snap.images = {i: img for i, img in _images(c, wanted).items()}
        snap.projects = _projects(c)
        current = c.current_project_id or ""
        snap.project = {"id": current, "name": snap.projects.get(current, {}).get("name", "")}
        return snap


def _projects(conn: Any) -> dict[str, dict]:
    """The projects the user can scope to: ``GET /v3/auth/projects``, which any user may call
    for themselves (listing every project is an administrator's call)."""
    answer = conn.identity.get("/auth/projects")
    answer.raise_for_status()
    return {
        p["id"]: {k: p.get(k) for k in ("id", "name", "domain_id", "enabled", "description")}
        for p in answer.json().get("projects", [])
    }


def _images(conn: Any, wanted: set[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for image_id in sorted(wanted):
        try:
            found[image_id] = conn.image.get_image(image_id).to_dict(computed=False)
        except Exception:  # noqa: BLE001 - an image deleted since the server was built
            continue
    return found


def validation_doc(snap: Snapshot, server: dict) -> dict[str, Any]:
    """The server as Forklift's OpenStack inventory serves it as a workload (the shape
    rules/openstack/INPUT.md lists), so Forklift's policies read it unchanged."""
    flavor = snap.flavor_of(server)
    image = server.get("image") or {}
    booted_image = image.get("id") if isinstance(image, dict) else ""
    volumes = []
    for vol in snap.server_volumes(server):
        volumes.append(
            {
                "id": vol["id"],
                "name": vol.get("name") or "",
                "status": vol.get("status") or "",
                "size": vol.get("size"),
                "bootable": "true" if vol.get("is_bootable") else "false",
                "multiattach": bool(vol.get("is_multiattach")),
                "volumeType": vol.get("volume_type") or "",
                "attachments": [
                    {"serverID": a.get("server_id", ""), "device": a.get("device", "")}
                    for a in vol.get("attachments") or []
                ],
            }
        )
    networks = []
    for port in snap.server_ports(server):
        net = snap.networks.get(port.get("network_id", ""), {})
        networks.append(
            {
                "id": port.get("network_id", ""),
                "name": net.get("name", ""),
                "macAddress": port.get("mac_address", ""),
                "fixedIPs": port.get("fixed_ips") or [],
            }
        )
    image_id = snap.image_id(server)
    return {
        "id": server["id"],
        "name": server.get("name") or "",
        "status": server.get("status") or "",
        "tenantID": server.get("project_id") or snap.project.get("id", ""),
        "availabilityZone": server.get("availability_zone") or "",
        "imageID": booted_image or "",
        "image": {"id": image_id, "properties": snap.image_properties(server)},
        "flavorID": flavor.get("id") or "",
        "flavor": {
            "id": flavor.get("id") or "",
            "name": flavor.get("original_name") or flavor.get("name") or "",
            "vcpus": flavor.get("vcpus"),
            "ram": flavor.get("ram"),
            "disk": flavor.get("disk"),
            "ephemeral": flavor.get("ephemeral") or 0,
            "swap": flavor.get("swap") or 0,
            "extraSpecs": {k: str(v) for k, v in (flavor.get("extra_specs") or {}).items()},
        },
        "volumes": volumes,
        "addresses": server.get("addresses") or {},
        "networks": networks,
        "securityGroups": [
            {"name": g.get("name", "")} for g in server.get("security_groups") or []
        ],
    }
