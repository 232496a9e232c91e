"""Benchmark: an OpenStack volume read from Glance by the plugin against ``curl`` of the image.

Run ``python bench/bench_openstack_download.py [--size-gib 4 --data-mib 1024]``. It starts the
test peers' cloud (real Keystone and Glance under gunicorn with TLS, and the Nova/Cinder
stand-ins: testpeers/openstack/), makes a server with a volume of ``--size-gib`` GiB holding
``--data-mib`` MiB of data, and prepares it as the reconciler does before a copy: snapshot,
volume, ``os-volume_upload_image`` (qcow2 unless ``--format raw``; the time this takes is
printed, it is Cinder's and Glance's). After one untimed read of the image (both cases then
read Glance's store from the page cache), it times in the same run:

  (a) the plugin's reader (Range requests, qcow2 cluster tables) through copy_disk into a
      sparse raw image, checkpointed in a progress store                      (engine)
  (b) ``curl`` of the same image URL with the same token into a file          (baseline)

and prints the ratio engine / curl (<1: faster than curl; curl does not convert, verify or
checkpoint, and for qcow2 it writes the image, not the disk), and checks that both hold the
volume's bytes (curl's qcow2 converted by qemu-img, untimed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.plugin_manager import connect  # noqa: E402
from reconciler.progress.store import ProgressStore  # noqa: E402
from reconciler.transfer.engine import copy_disk  # noqa: E402
from reconciler.transfer.rawfile import RawDiskWriter  # noqa: E402
from testpeers.openstack.cloud import pattern, start_cloud  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size-gib", type=int, default=4)
    p.add_argument("--data-mib", type=int, default=1024)
    p.add_argument("--format", choices=("qcow2", "raw"), default="qcow2")
    p.add_argument("--streams", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-openstack-") as tmp:
        work = Path(tmp)
        cloud = start_cloud(work / "cloud")
        try:
            s = cloud.standins
            block = pattern(16 * MiB, 7)
            pieces = max(1, args.data_mib // 16)
            stride = args.size_gib * GiB // pieces
            vol = s.add_volume(
                "bench-root", args.size_gib, [(i * stride, block) for i in range(pieces)]
            )
            flavor = s.add_flavor("bench", 1, 1024)
            net, sub = s.add_network("bench", "10.9.0.0/24")
            server = s.add_server(
                "bench", flavor, [vol], [(net, sub, "10.9.0.9", "fa:16:3e:09:09:09")]
            )
            settings = {"imageFormat": args.format}
            conn = connect("openstack", cloud.auth_url, cloud.secret(), settings)
            started = time.monotonic()
            conn.prepare(server["id"])  # snapshot, volume, upload to Glance
            prepare = time.monotonic() - started
            image = conn.conn.image.images(name=f"mtv-gitops-{server['id']}-{vol['id']}")
            image = next(iter(image))
            url = f"{cloud.glance_url}/v2/images/{image.id}/file"
            token = conn.conn.session.get_token()

            def curl(out: Path) -> float:
                started = time.monotonic()
                subprocess.run(
                    ["curl", "-sSf", "--cacert", str(cloud.tls.ca_cert),
                     "-H", f"X-Auth-Token: {token}", "-o", str(out), url],
                    check=True,
                )  # fmt: skip
                return time.monotonic() - started

            curl(Path(os.devnull))  # Glance's store file into the page cache, for both
            reader = conn.open_disk(server["id"], vol["id"])
            store = ProgressStore(work / "progress.db")
            writer = RawDiskWriter(work / "disk.img", reader.size)
            started = time.monotonic()
            result = copy_disk(reader, writer, store, "bench", streams=args.streams)
            writer.close()
            engine = time.monotonic() - started
            sent = reader._reader().file.bytes_read
            store.close()
            reader.close()
            curl_s = curl(work / "image.curl")
            got = work / "image.raw"
            subprocess.run(
                ["qemu-img", "convert", "-f", args.format, "-O", "raw", str(work / "image.curl"),
                 str(got)],
                check=True,
            )  # fmt: skip
            source = s.path(vol["id"])
            same = all(
                subprocess.run(["cmp", "-s", str(source), str(f)]).returncode == 0
                for f in (work / "disk.img", got)
            )
            allocated = (work / "disk.img").stat().st_blocks * 512
            conn.release(server["id"])
            conn.close()
        finally:
            cloud.stop()
    print(
        f"OpenStack download, {args.size_gib} GiB volume, {args.data_mib} MiB data, "
        f"{args.format} image of {image.size / MiB:.0f} MiB in Glance"
    )
    print(f"  snapshot + volume + upload to Glance: {prepare:.1f} s (Cinder's and Glance's)")
    print(
        f"  engine (plugin reader -> copy_disk, {args.streams} streams, verified): {engine:.2f} s,"
        f" {sent / MiB:.0f} MiB over HTTP, {result.bytes_written / MiB:.0f} MiB written,"
        f" {allocated / MiB:.0f} MiB allocated"
    )
    print(f"  curl of the image URL (same token):  {curl_s:.2f} s")
    print(f"  ratio engine/curl: {engine / curl_s:.2f}")
    print(f"  both hold the volume's bytes: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
