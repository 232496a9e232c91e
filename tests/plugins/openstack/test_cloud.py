"""The test cloud itself: real Keystone and Glance, and stand-ins whose every answer
openstacksdk's own resource classes parse into what the stand-ins hold."""

from __future__ import annotations

import hashlib
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from testpeers.openstack.cloud import Cloud, volume_bytes

pytestmark = pytest.mark.integration


def test_keystone_issues_scoped_tokens_with_the_catalog(openstack_cloud: Cloud) -> None:
    conn = openstack_cloud.user()
    assert conn.current_project_id == openstack_cloud.project_id
    kinds = {e["type"] for e in conn.session.auth.get_access(conn.session).service_catalog.catalog}
    assert {"identity", "image", "compute", "block-storage", "network"} <= kinds
    conn.close()


def test_the_sdk_parses_every_standin_answer(openstack_cloud: Cloud) -> None:
    s, conn = openstack_cloud.standins, openstack_cloud.user()
    web = openstack_cloud.extra["seed"]["web"]
    servers = {x.id: x for x in conn.compute.servers(details=True)}
    assert set(servers) == set(s.servers)
    got = conn.compute.get_server(web["id"])
    assert (got.name, got.status, got.flavor.vcpus, got.flavor.ram) == ("web", "ACTIVE", 2, 2048)
    # 2.47+: embedded, with no id of its own (the SDK names it by its original name)
    assert got.flavor.original_name == "m1.small" and "id" not in s.servers[web["id"]]["flavor"]
    image = got.image  # volume-booted: "image": "" (an Image or a dict without an id)
    assert not (image.get("id") if isinstance(image, dict) else image.id), image
    assert [v["id"] for v in got.attached_volumes] == [
        v["id"] for v in openstack_cloud.extra["seed"]["volumes"]["web"]
    ]
    assert got.addresses["private"][0]["OS-EXT-IPS-MAC:mac_addr"] == "fa:16:3e:00:00:01"
    assert got.availability_zone == "nova" and got.security_groups == [{"name": "default"}]
    attachments = list(conn.compute.volume_attachments(got))
    assert [a.device for a in attachments] == ["/dev/vda", "/dev/vdb"]
    assert {f.name for f in conn.compute.flavors(details=True)} >= {"m1.small"}
    vols = {v.id: v for v in conn.block_storage.volumes(details=True)}
    assert set(vols) == set(s.volumes)
    root = vols[openstack_cloud.extra["seed"]["volumes"]["web"][0]["id"]]
    assert root.is_bootable is True and root.size == 1 and root.volume_type == "standard"
    assert root.attachments[0]["device"] == "/dev/vda"
    assert root.volume_image_metadata["image_name"] == "cirros"
    assert {t.name for t in conn.block_storage.types()} >= {"standard", "fast"}
    nets = {n.name: n for n in conn.network.networks()}
    assert set(nets) >= {"private", "storage"}
    ports = list(conn.network.ports(device_id=web["id"]))
    assert sorted(p.mac_address for p in ports) == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]
    assert all(p.fixed_ips and p.network_id in {n.id for n in nets.values()} for p in ports)
    assert {x.cidr for x in conn.network.subnets()} >= {"10.0.0.0/24", "10.1.0.0/24"}
    assert [g.name for g in conn.network.security_groups()] == ["default"]
    conn.close()


def test_stand_ins_refuse_a_bad_token(openstack_cloud: Cloud) -> None:
    url = openstack_cloud.standins.url("compute") + "/v2.1/servers/detail"
    req = urllib.request.Request(url, headers={"X-Auth-Token": "not-a-token"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=openstack_cloud.tls.context())
    assert err.value.code == 401


def test_volume_upload_lands_in_the_real_glance(openstack_cloud: Cloud, tmp_path: Path) -> None:
    """Snapshot (forced: the volume is attached), volume from it, the os_glance* keys Glance
    refuses dropped (Cinder bug 1945500), upload as qcow2: the real Glance serves an image
    that qemu-img reads back as the volume's bytes, Range requests included."""
    conn = openstack_cloud.user()
    vol = openstack_cloud.extra["seed"]["volumes"]["db"][0]
    snap = conn.block_storage.create_snapshot(volume_id=vol["id"], name="t-snap", force=True)
    temp = conn.block_storage.create_volume(name="t-vol", snapshot_id=snap.id, size=1)
    with pytest.raises(Exception, match="Glance refused"):  # Cinder bug 1945500, reproduced
        conn.block_storage.upload_volume_to_image(temp, "t-image", force=True)
    glance_keys = [k for k in temp.volume_image_metadata if k.startswith("os_glance")]
    conn.block_storage.delete_volume_image_metadata(temp, keys=glance_keys)
    answer = conn.block_storage.upload_volume_to_image(
        temp, "t-image", force=True, disk_format="qcow2", container_format="bare"
    )
    deadline = time.monotonic() + 120
    while (image := conn.image.get_image(answer["image_id"])).status != "active":
        assert time.monotonic() < deadline and image.status in ("queued", "saving"), image.status
        time.sleep(0.2)
    assert image.owner == openstack_cloud.project_id and image.disk_format == "qcow2"
    body = b"".join(conn.image.download_image(image, stream=True).iter_content(1 << 20))
    assert len(body) == image.size < 4 * 1024 * 1024  # the holes did not travel
    url = f"{openstack_cloud.glance_url}/v2/images/{image.id}/file"
    tail = urllib.request.Request(
        url, headers={"X-Auth-Token": conn.session.get_token(), "Range": "bytes=-512"}
    )
    with urllib.request.urlopen(tail, context=openstack_cloud.tls.context()) as r:
        assert r.status == 206 and r.read() == body[-512:]
    (tmp_path / "image.qcow2").write_bytes(body)
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "qcow2",
            "-O",
            "raw",
            str(tmp_path / "image.qcow2"),
            str(tmp_path / "image.raw"),
        ],
        check=True,
    )
    got = hashlib.sha256((tmp_path / "image.raw").read_bytes()).digest()
    assert got == hashlib.sha256(volume_bytes(openstack_cloud, vol["id"])).digest()
    conn.image.delete_image(image)
    conn.block_storage.delete_volume(temp)
    conn.block_storage.delete_snapshot(snap)
    assert not list(conn.image.images(name="t-image"))
    conn.close()
