"""The real guest migrated cold from its OVA onto a KubeVirt cluster: the transfer Job fills
the PVC, the conversion Job (``<plan>-<vm>-convert``) runs virt-v2v on it in software mode (no
node offers ``devices.kubevirt.io/kvm``), and the PVC's image boots on virtio.

The cluster is kmock's emulator and the test plays its kubelet (tests/support/cluster.py): the
Jobs' commands run here as the pods would run them, on the files standing for the PVCs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, Kubelet, to_cluster
from tests.support.guest import VM, Guest, boot, ensure_guest_ova, file_in_guest, guest_workspace

pytestmark = [
    pytest.mark.integration,
    pytest.mark.guest,
    # make test runs the real guest's path once (test_guest_boot.py); this one, as long again,
    # runs in make demo-convert
    pytest.mark.skipif(
        not os.environ.get("MTV_GITOPS_GUEST_ALL"),
        reason="set MTV_GITOPS_GUEST_ALL=1 (make demo-convert does) to run it",
    ),
]
NS = "demo-vms"


def test_the_conversion_job_converts_the_real_guest_on_its_pvc_and_it_boots(
    guest: Guest, cluster: Cluster, kubelet: Kubelet, tmp_path: Path
) -> None:
    kubelet.pod_seconds = 3600  # virt-v2v in software mode on a busy machine
    ws = guest_workspace(tmp_path / "ws", ensure_guest_ova(guest))
    env = to_cluster(ws, cluster)
    proc = ws.reconcile("--once", env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    [vm] = ws.status("plan", "demo-plan")["status"]["migration"]["vms"]
    assert vm["phase"] == "Completed", vm
    convert = {s["name"]: s for s in vm["pipeline"]}["ConvertGuest"]
    assert convert["phase"] == "Completed", convert
    assert "Debian" in convert["guest"]["os"]
    assert convert["guest"]["virtio"] == {"disk": True, "network": True}
    assert convert["guest"]["appliance"] == "tcg"  # no node offers devices.kubevirt.io/kvm

    [run] = [r for r in kubelet.runs if r.job == f"demo-plan-{VM}-convert"]
    assert run.returncode == 0, run.message
    assert run.argv[3:6] == ["convert-guest", "--name", VM]
    assert run.env.get("MTV_GITOPS_FORCE_TCG") == "1"

    manifest = cluster.get(f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachines/{VM}")
    assert "Debian" in manifest["metadata"]["annotations"]["mtv-gitops.io/guest-os"]
    devices = manifest["spec"]["template"]["spec"]["domain"]["devices"]
    assert [d["disk"]["bus"] for d in devices["disks"]] == ["virtio"]
    assert [i["model"] for i in devices["interfaces"]] == ["virtio"]

    image = kubelet.storage(NS, f"{VM}-disk-0") / "disk.img"
    assert not file_in_guest(image, "/usr/bin/vmtoolsd")  # open-vm-tools removed on the PVC
    booted = boot(image, tmp_path / "converted.console")
    assert booted.reached, booted.tail
    print(
        f"\nconversion Job: ConvertGuest {convert['guest']['seconds']:.0f}s "
        f"({convert['guest']['appliance']}); boot to multi-user {booted.seconds:.0f}s "
        f"({booted.accel})"
    )
