"""Nova, Cinder and Neutron stand-ins for tests: the API paths the OpenStack plugin uses.

Each answers with the shapes of the OpenStack API reference (compute 2.96, volume 3.71,
network 2.0), checks every request's token against the real Keystone (a token may validate
itself), and keeps its state in memory. A volume's bytes are a sparse file; a snapshot copies
it, a volume made from a snapshot copies that, and ``os-volume_upload_image`` converts the
volume with qemu-img (as Cinder's image upload does) and uploads it into the real Glance with
the caller's token, so the image belongs to the caller's project.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

GiB = 1024**3
COMPUTE_VERSION = "2.96"
VOLUME_VERSION = "3.71"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_us() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Standins:
    """The three services' state and servers; tests add servers and volumes through it."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.folder = Path(cloud.folder) / "cinder-volumes"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.flavors: dict[str, dict] = {}
        self.servers: dict[str, dict] = {}
        self.volumes: dict[str, dict] = {}
        self.snapshots: dict[str, dict] = {}
        self.types: dict[str, dict] = {}
        self.networks: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.tokens: dict[str, tuple[float, str]] = {}
        self.upload_format = "qcow2"  # what os-volume_upload_image writes when asked for it
        self.fail_uploads = False  # the next uploads end in an error (a failed migration)
        # one upload at a time, as one cinder-volume worker does them: Glance on sqlite under a
        # loaded machine failed some of several uploads at once
        self.upload_lock = threading.Lock()
        self.upload_errors: dict[str, str] = {}  # volume id: why its upload failed (to debug)
        self.requests: list[tuple[str, str]] = []
        self._servers: list[ThreadingHTTPServer] = []
        self.ports_by_service: dict[str, int] = {}
        self.add_type("standard")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cloud.tls.cert, self.cloud.tls.key)
        for service in ("compute", "volume", "network"):
            handler = type(f"{service}Handler", (_Handler,), {"standins": self, "service": service})
            httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            httpd.daemon_threads = True
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
            self.ports_by_service[service] = httpd.server_address[1]
            threading.Thread(target=httpd.serve_forever, daemon=True).start()
            self._servers.append(httpd)

    def stop(self) -> None:
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
        self._servers.clear()

    def url(self, service: str) -> str:
        return f"https://127.0.0.1:{self.ports_by_service[service]}"

    def catalog(self) -> list[tuple[str, str, str]]:
        return [
            ("nova", "compute", self.url("compute") + "/v2.1"),
            ("cinderv3", "block-storage", self.url("volume") + "/v3"),
            ("neutron", "network", self.url("network")),
        ]

    # -- what tests make -----------------------------------------------------------------

    def add_type(self, name: str) -> dict:
        t = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": f"{name} volumes",
            "is_public": True,
            "os-volume-type-access:is_public": True,
            "extra_specs": {},
            "qos_specs_id": None,
        }
        self.types[t["id"]] = t
        return t

    def add_flavor(self, name: str, vcpus: int, ram_mb: int, disk_gb: int = 0) -> dict:
        f = {
            "id": str(uuid.uuid4()),
            "name": name,
            "vcpus": vcpus,
            "ram": ram_mb,
            "disk": disk_gb,
            "swap": 0,
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": True,
            "rxtx_factor": 1.0,
            "description": None,
            "extra_specs": {},
            "links": [],
        }
        self.flavors[f["id"]] = f
        return f

    def add_network(self, name: str, cidr: str) -> tuple[dict, dict]:
        net_id, sub_id = str(uuid.uuid4()), str(uuid.uuid4())
        project = self.cloud.project_id
        common = {
            "project_id": project,
            "tenant_id": project,
            "created_at": _now(),
            "updated_at": _now(),
            "revision_number": 1,
            "tags": [],
            "description": "",
        }
        net = {
            "id": net_id,
            "name": name,
            "status": "ACTIVE",
            "subnets": [sub_id],
            "admin_state_up": True,
            "shared": False,
            "mtu": 1500,
            "router:external": False,
            "port_security_enabled": True,
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
            "ipv4_address_scope": None,
            "ipv6_address_scope": None,
            "is_default": False,
            **common,
        }
        base = cidr.rsplit(".", 1)[0]
        sub = {
            "id": sub_id,
            "name": f"{name}-subnet",
            "network_id": net_id,
            "ip_version": 4,
            "cidr": cidr,
            "gateway_ip": f"{base}.1",
            "enable_dhcp": True,
            "allocation_pools": [{"start": f"{base}.2", "end": f"{base}.254"}],
            "dns_nameservers": [],
            "host_routes": [],
            "ipv6_address_mode": None,
            "ipv6_ra_mode": None,
            "subnetpool_id": None,
            "service_types": [],
            **common,
        }
        self.networks[net_id], self.subnets[sub_id] = net, sub
        return net, sub

    def add_security_group(self, name: str) -> dict:
        project = self.cloud.project_id
        sg = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": name,
            "project_id": project,
            "tenant_id": project,
            "security_group_rules": [],
            "stateful": True,
            "created_at": _now(),
            "updated_at": _now(),
            "revision_number": 1,
            "tags": [],
        }
        self.security_groups[sg["id"]] = sg
        return sg

    def add_volume(
        self,
        name: str,
        size_gib: int,
        writes: list[tuple[int, bytes]] = (),
        volume_type: str = "standard",
        bootable: bool = False,
    ) -> dict:
        """A volume whose sparse file holds ``writes`` (offset, bytes) and zeros elsewhere."""
        vol = self._volume(name, size_gib, volume_type)
        with open(self.path(vol["id"]), "r+b") as f:
            for off, data in writes:
                f.seek(off)
                f.write(data)
        if bootable:
            vol["bootable"] = "true"
            vol["volume_image_metadata"] = {
                "image_id": str(uuid.uuid4()),
                "image_name": "cirros",
                "os_glance_importer": "web-download",  # Cinder bug 1945500: must be dropped
                "os_glance_failed_import": "",
                "hw_disk_bus": "virtio",
            }
        return vol

    def add_server(
        self,
        name: str,
        flavor: dict,
        volumes: list[dict],
        nets: list[tuple[dict, dict, str, str]],
        security_groups: list[dict] = (),
        image_id: str = "",
        status: str = "ACTIVE",
    ) -> dict:
        """A server with ``volumes`` attached in order (the first at /dev/vda) and a port per
        (network, subnet, ip, mac); ``image_id``: booted from that image, no volume."""
        project = self.cloud.project_id
        sid = str(uuid.uuid4())
        addresses: dict[str, list] = {}
        for net, sub, ip, mac in nets:
            port = {
                "id": str(uuid.uuid4()),
                "name": "",
                "network_id": net["id"],
                "mac_address": mac,
                "fixed_ips": [{"subnet_id": sub["id"], "ip_address": ip}],
                "device_id": sid,
                "device_owner": "compute:nova",
                "status": "ACTIVE",
                "admin_state_up": True,
                "project_id": project,
                "tenant_id": project,
                "security_groups": [g["id"] for g in security_groups],
                "binding:vnic_type": "normal",
                "port_security_enabled": True,
                "allowed_address_pairs": [],
                "extra_dhcp_opts": [],
                "tags": [],
                "description": "",
                "created_at": _now(),
                "updated_at": _now(),
                "revision_number": 1,
            }
            self.ports[port["id"]] = port
            addresses.setdefault(net["name"], []).append(
                {
                    "version": 4,
                    "addr": ip,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                }
            )
        for i, vol in enumerate(volumes):
            device = f"/dev/vd{chr(ord('a') + i)}"
            vol["status"] = "in-use"
            vol["attachments"] = [
                {
                    "id": vol["id"],
                    "attachment_id": str(uuid.uuid4()),
                    "volume_id": vol["id"],
                    "server_id": sid,
                    "host_name": None,
                    "device": device,
                    "attached_at": _now_us(),
                }
            ]
        server = {
            "id": sid,
            "name": name,
            "status": status,
            "tenant_id": project,
            "user_id": self.cloud.user_id,
            "metadata": {},
            "hostId": uuid.uuid4().hex,
            "image": {"id": image_id, "links": []} if image_id else "",
            "flavor": {
                "vcpus": flavor["vcpus"],
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "original_name": flavor["name"],
                "extra_specs": {},
            },
            "created": _now(),
            "updated": _now(),
            "addresses": addresses,
            "accessIPv4": "",
            "accessIPv6": "",
            "links": [],
            "OS-DCF:diskConfig": "MANUAL",
            "progress": 0,
            "OS-EXT-AZ:availability_zone": "nova",
            "config_drive": "",
            "key_name": None,
            "OS-SRV-USG:launched_at": _now_us(),
            "OS-SRV-USG:terminated_at": None,
            "OS-EXT-STS:task_state": None,
            "OS-EXT-STS:vm_state": "active" if status == "ACTIVE" else "stopped",
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 4,
            "os-extended-volumes:volumes_attached": [
                {"id": v["id"], "delete_on_termination": False} for v in volumes
            ],
            "security_groups": [{"name": g["name"]} for g in security_groups],
            "locked": False,
            "locked_reason": None,
            "description": None,
            "tags": [],
            "trusted_image_certificates": None,
            "server_groups": [],
            "pinned_availability_zone": None,
        }
        self.servers[sid] = server
        return server

    def set_status(self, server_id: str, status: str) -> None:
        """Put a server ACTIVE or SHUTOFF, as if a user started or stopped it."""
        with self.lock:
            _set_status(self.servers[server_id], status)

    def path(self, volume_id: str) -> Path:
        return self.folder / f"{volume_id}.raw"

    def _volume(self, name: str, size_gib: int, volume_type: str, **more: Any) -> dict:
        vtype = next(t for t in self.types.values() if t["name"] == volume_type)
        vid = str(uuid.uuid4())
        with open(self.path(vid), "wb") as f:
            f.truncate(size_gib * GiB)
        vol = {
            "id": vid,
            "name": name,
            "status": "available",
            "size": size_gib,
            "volume_type": vtype["name"],
            "volume_type_id": vtype["id"],
            "bootable": "false",
            "attachments": [],
            "availability_zone": "nova",
            "created_at": _now_us(),
            "updated_at": _now_us(),
            "description": None,
            "metadata": {},
            "encrypted": False,
            "multiattach": False,
            "snapshot_id": None,
            "source_volid": None,
            "user_id": self.cloud.user_id,
            "links": [],
            "replication_status": None,
            "consistencygroup_id": None,
            "group_id": None,
            "provider_id": None,
            "service_uuid": None,
            "shared_targets": False,
            "cluster_name": None,
            "consumes_quota": True,
        } | more
        self.volumes[vid] = vol
        return vol

    # -- token checks against Keystone ---------------------------------------------------

    def project_of(self, token: str) -> str:
        """The project of a valid token (Keystone asked, answers kept for 30 s)."""
        with self.lock:
            hit = self.tokens.get(token)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        req = urllib.request.Request(
            self.cloud.auth_url + "/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
        )
        try:
            with urllib.request.urlopen(req, context=self.cloud.tls.context(), timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            raise Refused(401, f"Keystone refused the token: HTTP {exc.code}") from None
        project = body["token"].get("project", {}).get("id", "")
        with self.lock:
            self.tokens[token] = (time.monotonic() + 30, project)
        return project

    # -- Cinder's image upload -----------------------------------------------------------

    def upload(self, vol: dict, token: str, image_name: str, disk_format: str) -> dict:
        """Create the image in Glance and upload the volume's bytes to it in a thread, as
        Cinder's volume service does; the volume reads ``uploading`` until it is done."""
        glance = self.cloud.glance_url
        fmt = "qcow2" if disk_format == "qcow2" else "raw"
        props = {k: v for k, v in (vol.get("volume_image_metadata") or {}).items()}
        body = {
            "name": image_name,
            "disk_format": fmt,
            "container_format": "bare",
            "visibility": "private",
        } | {
            k: str(v)
            for k, v in props.items()
            if k not in ("image_id", "image_name", "checksum", "size")
        }
        try:
            image = _glance(glance, token, self.cloud.tls, "POST", "/v2/images", body)
        except urllib.error.HTTPError as exc:  # os_glance* keys: Cinder bug 1945500
            raise Refused(400, f"Glance refused the image: HTTP {exc.code}") from None
        previous = vol["status"]
        vol["status"] = "uploading"

        def run() -> None:
            try:
                with self.upload_lock:
                    upload()
            except Exception as exc:  # noqa: BLE001 - the volume shows the failure, as Cinder's does
                with self.lock:
                    self.upload_errors[vol["id"]] = f"{type(exc).__name__}: {exc}"
                    vol["status"] = "error"
                return
            with self.lock:
                vol["status"] = previous

        def upload() -> None:
            if self.fail_uploads:
                raise RuntimeError("the volume driver failed (the test asked it to)")
            src = self.path(vol["id"])
            data = src
            if fmt == "qcow2":
                data = self.folder / f"{vol['id']}.upload.qcow2"
                subprocess.run(
                    ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(data)],
                    check=True,
                )
            with open(data, "rb") as f:
                _glance(
                    glance,
                    token,
                    self.cloud.tls,
                    "PUT",
                    f"/v2/images/{image['id']}/file",
                    f,
                    size=data.stat().st_size,
                )
            if data != src:
                data.unlink()

        threading.Thread(target=run, daemon=True).start()
        return {
            "id": vol["id"],
            "updated_at": _now_us(),
            "status": "uploading",
            "display_description": None,
            "size": vol["size"],
            "volume_type": self.types[vol["volume_type_id"]],
            "image_id": image["id"],
            "container_format": "bare",
            "disk_format": fmt,
            "image_name": image_name,
            "protected": False,
            "visibility": "private",
        }


def _set_status(server: dict, status: str) -> None:
    server["status"] = status
    on = status == "ACTIVE"
    server["OS-EXT-STS:vm_state"] = "active" if on else "stopped"
    server["OS-EXT-STS:power_state"] = 1 if on else 4
    server["updated"] = _now()


def _glance(
    base: str, token: str, tls: Any, method: str, path: str, body: Any, size: int = 0
) -> dict:
    headers = {"X-Auth-Token": token}
    data: Any
    if isinstance(body, dict):
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    else:
        data = body
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(size)
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, context=tls.context(), timeout=600) as r:
        raw = r.read()
    return json.loads(raw) if raw else {}


def _copy_sparse(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)


class _Handler(BaseHTTPRequestHandler):
    standins: Standins
    service: str
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if self.service == "compute":
            self.send_header("OpenStack-API-Version", f"compute {COMPUTE_VERSION}")
            self.send_header("X-OpenStack-Nova-API-Version", COMPUTE_VERSION)
        elif self.service == "volume":
            self.send_header("OpenStack-API-Version", f"volume {VOLUME_VERSION}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else {}

    def _handle(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        body = self._body() if method in ("POST", "PUT") else {}
        try:
            versions = getattr(self, f"{self.service}_versions")(parts)
            if versions is not None:
                return self._send(200, versions)
            token = self.headers.get("X-Auth-Token", "")
            if not token:
                raise Refused(401, "no X-Auth-Token")
            project = self.standins.project_of(token)
            self.standins.requests.append((method, url.path))
            with self.standins.lock:
                answer = getattr(self, self.service)(method, parts[1:], query, body, project)
            status, doc = answer
            self._send(status, doc)
        except Refused as exc:
            key = {401: "unauthorized", 404: "itemNotFound"}.get(exc.status, "badRequest")
            self._send(exc.status, {key: {"code": exc.status, "message": str(exc)}})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- version documents (no token needed, as on a real cloud) -------------------------

    def _base(self) -> str:
        return self.standins.url(self.service)

    def compute_versions(self, parts: list[str]) -> dict | None:
        doc = {
            "id": "v2.1",
            "status": "CURRENT",
            "version": COMPUTE_VERSION,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self._base()}/v2.1/"}],
            "media-types": [
                {
                    "base": "application/json",
                    "type": "application/vnd.openstack.compute+json;version=2.1",
                }
            ],
        }
        if not parts:
            return {"versions": [doc]}
        if parts == ["v2.1"]:
            return {"version": doc}
        return None

    def volume_versions(self, parts: list[str]) -> dict | None:
        doc = {
            "id": "v3.0",
            "status": "CURRENT",
            "version": VOLUME_VERSION,
            "min_version": "3.0",
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self._base()}/v3/"}],
            "media-types": [
                {
                    "base": "application/json",
                    "type": "application/vnd.openstack.volume+json;version=3",
                }
            ],
        }
        if not parts:
            return {"versions": [doc]}
        if parts == ["v3"]:
            return {"version": doc}
        return None

    def network_versions(self, parts: list[str]) -> dict | None:
        doc = {
            "id": "v2.0",
            "status": "CURRENT",
            "links": [{"rel": "self", "href": f"{self._base()}/v2.0/"}],
        }
        if not parts:
            return {"versions": [doc]}
        if parts == ["v2.0"]:
            return {"resources": []}
        return None

    # -- Nova ----------------------------------------------------------------------------

    def compute(self, method: str, p: list[str], q: dict, body: dict, project: str) -> tuple:
        s = self.standins
        if p == ["servers", "detail"] or p == ["servers"]:
            since = q.get("changes-since", "")
            found = [v for v in s.servers.values() if v["tenant_id"] == project]
            found = [v for v in found if not since or v["updated"] >= since[:19] + "Z"]
            if "name" in q:
                found = [v for v in found if re.search(q["name"], v["name"])]
            return 200, {"servers": found}
        if len(p) >= 2 and p[0] == "servers":
            server = s.servers.get(p[1])
            if server is None or server["tenant_id"] != project:
                raise Refused(404, f"Server {p[1]} could not be found.")
            if len(p) == 2 and method == "GET":
                return 200, {"server": server}
            if p[2:] == ["os-volume_attachments"]:
                return 200, {
                    "volumeAttachments": [
                        {
                            "id": v["id"],
                            "volumeId": v["id"],
                            "serverId": server["id"],
                            "device": a["device"],
                            "tag": None,
                            "delete_on_termination": False,
                            "attachment_id": a["attachment_id"],
                            "bdm_uuid": str(uuid.uuid4()),
                        }
                        for v in s.volumes.values()
                        for a in v["attachments"]
                        if a["server_id"] == server["id"]
                    ]
                }
            if p[2:] == ["action"] and method == "POST":
                if "os-stop" in body:
                    if server["status"] != "ACTIVE":
                        raise Refused(409, "Cannot 'stop' instance while it is in vm_state stopped")
                    self._power(server, "SHUTOFF")
                elif "os-start" in body:
                    if server["status"] != "SHUTOFF":
                        raise Refused(409, "Cannot 'start' instance while it is in vm_state active")
                    self._power(server, "ACTIVE")
                else:
                    raise Refused(400, f"unsupported action {sorted(body)}")
                return 202, None
        if p == ["flavors", "detail"]:
            return 200, {"flavors": list(s.flavors.values())}
        if len(p) == 2 and p[0] == "flavors":
            if p[1] not in s.flavors:
                raise Refused(404, f"Flavor {p[1]} could not be found.")
            return 200, {"flavor": s.flavors[p[1]]}
        raise Refused(404, f"no such compute path {'/'.join(p)}")

    def _power(self, server: dict, status: str) -> None:
        _set_status(server, status)

    # -- Cinder --------------------------------------------------------------------------

    def volume(self, method: str, p: list[str], q: dict, body: dict, project: str) -> tuple:
        s = self.standins
        if p and p[0] == project:  # a catalog url with the project id in it
            p = p[1:]
        if p in (["volumes", "detail"], ["volumes"]) and method == "GET":
            found = list(s.volumes.values())
            if "name" in q:
                found = [v for v in found if v["name"] == q["name"]]
            return 200, {"volumes": found}
        if p == ["volumes"] and method == "POST":
            spec = body["volume"]
            snap = s.snapshots.get(spec.get("snapshot_id") or "")
            if spec.get("snapshot_id") and snap is None:
                raise Refused(404, f"Snapshot {spec['snapshot_id']} could not be found.")
            src = s.volumes[snap["volume_id"]] if snap else None
            vol = s._volume(
                spec.get("name") or "",
                int(spec.get("size") or (src["size"] if src else 1)),
                spec.get("volume_type") or (src["volume_type"] if src else "standard"),
                snapshot_id=snap["id"] if snap else None,
                metadata=dict(spec.get("metadata") or {}),
                bootable=src["bootable"] if src else "false",
                description=spec.get("description"),
            )
            if src and src.get("volume_image_metadata"):
                vol["volume_image_metadata"] = dict(src["volume_image_metadata"])
            if snap:
                _copy_sparse(s.path(f"{snap['id']}.snap"), s.path(vol["id"]))
            return 202, {"volume": vol}
        if p in (["snapshots", "detail"], ["snapshots"]) and method == "GET":
            found = list(s.snapshots.values())
            if "name" in q:
                found = [v for v in found if v["name"] == q["name"]]
            return 200, {"snapshots": found}
        if p == ["snapshots"] and method == "POST":
            spec = body["snapshot"]
            vol = s.volumes.get(spec["volume_id"])
            if vol is None:
                raise Refused(404, f"Volume {spec['volume_id']} could not be found.")
            if vol["status"] == "in-use" and not spec.get("force"):
                raise Refused(400, "Invalid volume: Volume is in-use: use force")
            snap = {
                "id": str(uuid.uuid4()),
                "name": spec.get("name"),
                "status": "available",
                "size": vol["size"],
                "volume_id": vol["id"],
                "created_at": _now_us(),
                "updated_at": _now_us(),
                "description": spec.get("description"),
                "metadata": dict(spec.get("metadata") or {}),
                "progress": "100%",
                "os-extended-snapshot-attributes:project_id": project,
                "group_snapshot_id": None,
                "user_id": s.cloud.user_id,
                "consumes_quota": True,
            }
            _copy_sparse(s.path(vol["id"]), s.path(f"{snap['id']}.snap"))
            s.snapshots[snap["id"]] = snap
            return 202, {"snapshot": snap}
        if len(p) == 2 and p[0] == "snapshots":
            snap = s.snapshots.get(p[1])
            if snap is None:
                raise Refused(404, f"Snapshot {p[1]} could not be found.")
            if method == "DELETE":
                if any(v.get("snapshot_id") == p[1] for v in s.volumes.values()):
                    raise Refused(400, "Invalid snapshot: it has dependent volumes")
                del s.snapshots[p[1]]
                s.path(f"{p[1]}.snap").unlink(missing_ok=True)
                return 202, None
            return 200, {"snapshot": snap}
        if len(p) >= 2 and p[0] == "volumes":
            vol = s.volumes.get(p[1])
            if vol is None:
                raise Refused(404, f"Volume {p[1]} could not be found.")
            if len(p) == 2 and method == "GET":
                return 200, {"volume": vol}
            if len(p) == 2 and method == "DELETE":
                if vol["attachments"]:
                    raise Refused(400, "Invalid volume: Volume status must be available")
                del s.volumes[p[1]]
                s.path(p[1]).unlink(missing_ok=True)
                return 202, None
            if p[2:] == ["action"] and method == "POST":
                if "os-volume_upload_image" in body:
                    spec = body["os-volume_upload_image"]
                    if vol["status"] == "in-use" and not spec.get("force"):
                        raise Refused(400, "Invalid volume: Volume status is in-use")
                    token = self.headers["X-Auth-Token"]
                    doc = s.upload(vol, token, spec["image_name"], spec.get("disk_format", "raw"))
                    return 202, {"os-volume_upload_image": doc}
                if "os-unset_image_metadata" in body:
                    key = body["os-unset_image_metadata"]["key"]
                    (vol.get("volume_image_metadata") or {}).pop(key, None)
                    return 200, None
                raise Refused(400, f"unsupported action {sorted(body)}")
        if p == ["types"]:
            return 200, {"volume_types": list(s.types.values())}
        if len(p) == 2 and p[0] == "types":
            if p[1] not in s.types:
                raise Refused(404, f"Volume type {p[1]} could not be found.")
            return 200, {"volume_type": s.types[p[1]]}
        raise Refused(404, f"no such volume path {'/'.join(p)}")

    # -- Neutron -------------------------------------------------------------------------

    def network(self, method: str, p: list[str], q: dict, body: dict, project: str) -> tuple:
        s = self.standins
        tables = {
            "networks": s.networks,
            "subnets": s.subnets,
            "ports": s.ports,
            "security-groups": s.security_groups,
        }
        if p and p[0] in tables and method == "GET":
            table = tables[p[0]]
            key = p[0].replace("-", "_")
            if len(p) == 2:
                if p[1] not in table:
                    raise Refused(404, f"{p[0]} {p[1]} could not be found.")
                return 200, {key[:-1]: table[p[1]]}
            found = [
                r
                for r in table.values()
                if all(
                    str(r.get(k)) == v
                    for k, v in q.items()
                    if k not in ("limit", "marker", "fields")
                )
            ]
            return 200, {key: found}
        raise Refused(404, f"no such network path {'/'.join(p)}")
