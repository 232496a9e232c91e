"""Deterministic, realistic vSphere VM documents, shaped like Forklift's inventory ``input``.

``vm_documents(n, seed)`` returns ``n`` VM documents as the vSphere inventory serves them to the
validation service (MTV 2.4 guide, section 6.2.3): the VM's own fields, its disks, NICs,
devices and guest information, and the full ``host`` object with its networking (pNICs, vNICs,
port groups, switches) and the nested ``cluster``. The estate is built from one seeded random
generator: a few datacenters' worth of clusters and hosts, every VM placed on one host, so
VMs on one host share the same host and cluster content, as they do in an inventory.

The mix aims at a typical enterprise estate, so that a realistic fraction of the VMs trips
rules: names that are not DNS-1123 labels (upper case, underscores, spaces, dots), CBT off,
snapshots, UEFI, secure boot and vTPM, USB controllers, serial ports, RDM, shared and
independent disks, NVMe controllers, hot plug, affinity, DRS/HA/DPM clusters, old ESXi hosts,
unsupported guests and so on. The same ``(n, seed)`` always gives the same documents.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

PROVIDER = "c872d364-d62b-46f0-bd42-16799f40324e"
GiB = 1024**3

# (weight, guestId, guestName, family); family picks the guest file systems
GUESTS: list[tuple[int, str, str, str]] = [
    (22, "rhel8_64Guest", "Red Hat Enterprise Linux 8 (64-bit)", "rhel"),
    (14, "rhel9_64Guest", "Red Hat Enterprise Linux 9 (64-bit)", "rhel"),
    (10, "rhel7_64Guest", "Red Hat Enterprise Linux 7 (64-bit)", "rhel"),
    (2, "rhel6_64Guest", "Red Hat Enterprise Linux 6 (64-bit)", "rhel"),
    (3, "centos7_64Guest", "CentOS 7 (64-bit)", "rhel"),
    (1, "centos64Guest", "CentOS 4/5/6 (64-bit)", "rhel"),
    (5, "ubuntu64Guest", "Ubuntu Linux (64-bit)", "ubuntu"),
    (3, "sles15_64Guest", "SUSE Linux Enterprise 15 (64-bit)", "sles"),
    (1, "sles11_64Guest", "SUSE Linux Enterprise 11 (64-bit)", "sles"),
    (12, "windows2019srv_64Guest", "Microsoft Windows Server 2019 (64-bit)", "windows"),
    (8, "windows2019srvNext_64Guest", "Microsoft Windows Server 2022 (64-bit)", "windows"),
    (6, "windows9Server64Guest", "Microsoft Windows Server 2016 (64-bit)", "windows"),
    (3, "windows7Server64Guest", "Microsoft Windows Server 2008 R2 (64-bit)", "windows"),
    (1, "winNetEnterprise64Guest", "Microsoft Windows Server 2003 (64-bit)", "windows"),
    (3, "windows9_64Guest", "Microsoft Windows 10 (64-bit)", "windows"),
    (1, "vmwarePhoton64Guest", "VMware Photon OS (64-bit)", "photon"),
    (1, "freebsd12_64Guest", "FreeBSD 12 (64-bit)", "bsd"),
    (1, "other3xLinux64Guest", "Other 3.x or later Linux (64-bit)", "rhel"),
]

ROLES = [
    "web", "app", "db", "api", "cache", "mq", "ldap", "dns", "proxy", "jenkins", "gitlab",
    "build", "batch", "etl", "report", "sap", "oracle", "mssql", "pg", "redis", "kafka", "es",
    "ftp", "mail", "print", "file", "dc", "ad", "backup", "monitor", "grafana", "k8s-node",
]  # fmt: skip
ENVS = ["prod", "stg", "dev", "test", "qa", "dr", "uat"]
SITES = ["tyo", "osa", "fra", "ams", "nyc", "sjc"]
ESXI_VERSIONS = [(3, "6.0.0"), (12, "6.5.0"), (25, "6.7.0"), (45, "7.0.3"), (15, "8.0.2")]


def _pick(rng: random.Random, weighted: list[tuple[int, Any]]) -> Any:
    return rng.choices([v for _, v in weighted], [w for w, _ in weighted])[0]


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"kind": kind, "id": ident}


def _link(kind: str, ident: str) -> str:
    return f"providers/vsphere/{PROVIDER}/{kind}/{ident}"


def _vm_name(rng: random.Random, i: int) -> str:
    """Mostly DNS-1123 names; about a third need fixing, as in real vCenters."""
    role, env, site = rng.choice(ROLES), rng.choice(ENVS), rng.choice(SITES)
    style = rng.random()
    if style < 0.62:
        return f"{site}-{role}-{env}-{i:05d}"
    if style < 0.74:
        return f"{site.upper()}{role.upper().replace('-', '')}{env.upper()}{i:04d}"
    if style < 0.84:
        return f"{role}_{env}_{i:05d}"
    if style < 0.90:
        return f"{role}.{env}.example.com-{i}"
    if style < 0.95:
        return f"{role.capitalize()} {env.upper()} server {i}"
    if style < 0.98:
        return f"{site}-{role}-{env}-{i:05d}-old"
    if style < 0.99:
        return f"{role}-{env}-{i}-" + "-".join(rng.choice(ROLES) for _ in range(10))
    return f"-{role}-{i}-"  # leading/trailing dash: still not a DNS-1123 label


def _cluster(rng: random.Random, c: int, dc: int, hosts: list[str]) -> dict[str, Any]:
    cid = f"domain-c{100 + c}"
    nets = [_ref("Network", f"network-{30 + dc * 10 + k}") for k in range(rng.randint(3, 6))]
    nets.append(_ref("Network", f"dvportgroup-{40 + c}"))
    return {
        "id": cid,
        "parent": _ref("Folder", f"group-h{20 + dc}"),
        "revision": rng.randint(1, 40),
        "name": f"{rng.choice(SITES)}-cluster-{c:02d}",
        "selfLink": _link("clusters", cid),
        "folder": f"group-h{20 + dc}",
        "networks": nets,
        "datastores": [_ref("Datastore", f"datastore-{60 + dc * 10 + k}") for k in range(4)],
        "hosts": [_ref("Host", h) for h in hosts],
        "dasEnabled": rng.random() < 0.6,
        "dasVms": [],
        "drsEnabled": rng.random() < 0.7,
        "drsBehavior": rng.choice(["fullyAutomated", "partiallyAutomated", "manual"]),
        "drsVms": [],
        "dpmEnabled": rng.random() < 0.06,
        "hostAffinityVms": [],  # filled once the VMs are placed
        "datacenter": _ref("Datacenter", f"datacenter-{dc + 1}"),
    }


def _networking(rng: random.Random, h: int) -> dict[str, Any]:
    pnics = [
        {"key": f"key-vim.host.PhysicalNic-vmnic{k}", "linkSpeed": rng.choice([10000, 25000])}
        for k in range(4)
    ]
    vnics = []
    for k, pg in enumerate(["Management Network", "Storage Network", "VM_Migration", ""]):
        vnics.append(
            {
                "key": f"key-vim.host.VirtualNic-vmk{k}",
                "portGroup": pg,
                "dPortGroup": "" if pg else f"dvportgroup-{48 + k}",
                "ipAddress": f"10.{19 + k}.{h // 200}.{h % 200 + 10}",
                "subnetMask": "255.255.255.0",
                "mtu": 9000 if pg in ("Storage Network", "VM_Migration") else 1500,
            }
        )
    layout = {
        "vSwitch0": ["VM Network", "Management Network"],
        "vSwitch1": ["VM_10G_Network", "VM_Storage", "VM_DHCP_Network", "Storage Network"],
        "vSwitch2": ["VM_Isolated_67", "VM_Migration"],
    }
    port_groups, switches = [], []
    for s, (switch, groups) in enumerate(layout.items()):
        skey = f"key-vim.host.VirtualSwitch-{switch}"
        for g in groups:
            port_groups.append({"key": f"key-vim.host.PortGroup-{g}", "name": g, "vSwitch": skey})
        switches.append(
            {
                "key": skey,
                "name": switch,
                "portGroups": [f"key-vim.host.PortGroup-{g}" for g in groups],
                "pNICs": [f"key-vim.host.PhysicalNic-vmnic{k}" for k in (s, (s + 2) % 4)],
            }
        )
    return {"pNICs": pnics, "vNICs": vnics, "portGroups": port_groups, "switches": switches}


def _host(rng: random.Random, h: int, cluster: dict[str, Any]) -> dict[str, Any]:
    hid = f"host-{200 + h}"
    return {
        "id": hid,
        "parent": _ref("Cluster", cluster["id"]),
        "revision": rng.randint(1, 60),
        "name": f"esxi{h:03d}.{rng.choice(SITES)}.example.com",
        "selfLink": _link("hosts", hid),
        "status": _pick(rng, [(90, "green"), (8, "yellow"), (2, "red")]),
        "inMaintenance": rng.random() < 0.01,
        "connectionState": _pick(
            rng, [(994, "connected"), (4, "disconnected"), (2, "notResponding")]
        ),
        "managementServerIp": f"10.19.{h // 200}.{h % 200 + 10}",
        "thumbprint": ":".join(f"{rng.randrange(256):02X}" for _ in range(20)),
        "timezone": "UTC",
        "cpuSockets": 2,
        "cpuCores": rng.choice([16, 24, 32, 48, 64]),
        "productName": "VMware ESXi",
        "productVersion": _pick(rng, ESXI_VERSIONS),
        "networking": _networking(rng, h),
        "networks": cluster["networks"],
        "datastores": cluster["datastores"],
        "vms": None,
        "networkAdapters": [],
        "cluster": cluster,
    }


def _estate(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Hosts (each with its cluster), about 25 VMs per host, 8 hosts per cluster."""
    n_hosts = max(1, n // 25)
    hosts: list[dict[str, Any]] = []
    c = 0
    while len(hosts) < n_hosts:
        dc = c % 3
        size = min(rng.randint(4, 12), n_hosts - len(hosts))
        ids = [f"host-{200 + len(hosts) + k}" for k in range(size)]
        cluster = _cluster(rng, c, dc, ids)
        for _ in range(size):
            hosts.append(_host(rng, len(hosts), cluster))
        c += 1
    return hosts


def _disks(rng: random.Random, name: str, datastores: list[dict[str, str]]) -> list[dict]:
    count = _pick(rng, [(1, 0), (49, 1), (30, 2), (12, 3), (6, 4), (2, 8)])
    snap_suffix = "-000001" if rng.random() < 0.1 else ""
    bus = _pick(rng, [(85, "scsi"), (6, "sata"), (5, "nvme"), (4, "ide")])
    disks = []
    for k in range(count):
        ds = rng.choice(datastores)
        capacity = rng.choice([16, 20, 40, 50, 60, 80, 100, 200, 500, 1024]) * GiB
        roll = rng.random()
        if roll < 0.001:
            capacity = 0
        elif roll < 0.004:
            capacity += rng.randrange(1, 512)
        disks.append(
            {
                "key": 2000 + k,
                "unitNumber": k,
                "controllerKey": 1000,
                "file": f"[{ds['id']}] {name}/{name}{'_' + str(k) if k else ''}{snap_suffix}.vmdk",
                "datastore": ds if rng.random() > 0.002 else _ref("Datastore", ""),
                "capacity": capacity,
                "shared": rng.random() < 0.008,
                "rdm": rng.random() < 0.015,
                "bus": bus,
                "mode": _pick(
                    rng,
                    [
                        (97, "persistent"),
                        (2, "independent_persistent"),
                        (1, "independent_nonpersistent"),
                    ],
                ),
                "serial": f"6000C29{rng.randrange(16**25):025x}",
                "changeTrackingEnabled": True,
            }
        )
    return disks


def _devices(rng: random.Random, guest_family: str) -> list[dict[str, str]]:
    devices = [{"kind": "VirtualCdrom"}, {"kind": "VirtualVideoCard"}, {"kind": "VirtualKeyboard"}]
    if rng.random() < (0.35 if guest_family == "windows" else 0.15):
        devices.append({"kind": rng.choice(["VirtualUSBController", "VirtualUSBXHCIController"])})
    if rng.random() < 0.005:
        devices.append({"kind": "RealUSBController"})
    if rng.random() < 0.03:
        devices.append({"kind": "VirtualSerialPort"})
    if rng.random() < 0.003:
        devices.append({"kind": "VirtualParallelPort"})
    if rng.random() < 0.005:
        devices.append({"kind": "VirtualPCIPassthrough"})
    if rng.random() < 0.01:
        devices.append({"kind": "VirtualSriovEthernetCard"})
    return devices


def _guest_disks(rng: random.Random, family: str, disks: list[dict]) -> list[dict]:
    if family == "windows":
        kinds = ["NTFS"]
    elif family == "sles":
        kinds = ["btrfs", "xfs"] if rng.random() < 0.6 else ["xfs"]
    elif family == "ubuntu":
        kinds = ["ext4"]
    else:
        kinds = ["xfs", "ext4"]
    out = []
    for k, d in enumerate(disks):
        size = int(d["capacity"] * 0.95)
        out.append(
            {
                "key": d["key"],
                "diskPath": f"{chr(67 + k)}:\\" if family == "windows" else ("/", "/var")[k % 2],
                "capacity": size,
                "freeSpace": int(size * rng.uniform(0.05, 0.9)),
                "fileSystemType": kinds[0] if k == 0 else rng.choice(kinds),
            }
        )
    return out


def _vm(rng: random.Random, i: int, host: dict[str, Any]) -> dict[str, Any]:
    vid = f"vm-{1000 + i}"
    name = _vm_name(rng, i)
    guest_id, guest_name, family = _pick(rng, [(w, g) for w, *g in GUESTS])
    file_name = name.replace(" ", "_")[:40]
    disks = _disks(rng, file_name, host["cluster"]["datastores"])
    power = _pick(rng, [(76, "poweredOn"), (23, "poweredOff"), (1, "suspended")])
    cbt = rng.random() < 0.55  # CBT is off unless backup software or a warm migration set it
    if cbt and disks and rng.random() < 0.08:
        disks[-1]["changeTrackingEnabled"] = False
    if not cbt:
        for d in disks:
            d["changeTrackingEnabled"] = False
    snapshots = _pick(rng, [(84, 0), (10, 1), (4, 3), (1.5, 12), (0.5, 32)])
    efi = rng.random() < (0.6 if family == "windows" else 0.3)
    secure = efi and rng.random() < 0.4
    cpus = rng.choice([1, 2, 2, 4, 4, 4, 8, 8, 16, 32])
    memory = rng.choice([1024, 2048, 4096, 4096, 8192, 8192, 16384, 32768, 65536])
    tools = _pick(rng, [(85, "toolsOk"), (7, "toolsOld"), (5, "toolsNotRunning")])
    if rng.random() < 0.03:
        tools = "toolsNotInstalled"
    nics = [
        {
            "name": f"Network adapter {k + 1}",
            "mac": f"00:50:56:{rng.randrange(256):02x}:{rng.randrange(256):02x}:"
            f"{rng.randrange(256):02x}",
            "network": rng.choice(host["cluster"]["networks"]),
            "deviceKey": 4000 + k,
        }
        for k in range(_pick(rng, [(70, 1), (25, 2), (5, 4)]))
    ]
    ip = f"10.{rng.randrange(16, 32)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return {
        "selfLink": _link("workloads", vid),
        "id": vid,
        "parent": _ref("Folder", f"group-v{22 + i % 17}"),
        "path": f"/Datacenter/vm/{rng.choice(ENVS)}/{name}",
        "revision": rng.randint(1, 30),
        "name": name,
        "revisionValidated": 0,
        "isTemplate": rng.random() < 0.02,
        "networks": [n["network"] for n in nics],
        "disks": disks,
        "concerns": [],
        "policyVersion": 5,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
        "firmware": "efi" if efi else "bios",
        "secureBoot": secure,
        "tpmEnabled": efi and family == "windows" and rng.random() < 0.15,
        "powerState": power,
        "connectionState": _pick(rng, [(996, "connected"), (2, "orphaned"), (2, "inaccessible")]),
        "snapshot": _ref("VirtualMachineSnapshot", f"snapshot-{3000 + i}")
        if snapshots
        else {"kind": "", "id": ""},
        "snapshotCount": snapshots,
        "consolidationNeeded": rng.random() < 0.01,
        "changeTrackingEnabled": cbt,
        "cpuAffinity": [0, 2] if rng.random() < 0.02 else [],
        "cpuHotAddEnabled": rng.random() < 0.25,
        "cpuHotRemoveEnabled": rng.random() < 0.03,
        "memoryHotAddEnabled": rng.random() < 0.2,
        "faultToleranceEnabled": rng.random() < 0.005,
        "cpuCount": cpus,
        "coresPerSocket": rng.choice([c for c in (1, 2, 4) if cpus % c == 0]),
        "memoryMB": memory,
        "guestName": guest_name,
        "guestId": guest_id,
        "toolsStatus": tools,
        "balloonedMemory": rng.choice([256, 512, 1024]) if rng.random() < 0.05 else 0,
        "ipAddress": ip if power == "poweredOn" else "",
        "storageUsed": sum(d["capacity"] for d in disks) // rng.randint(2, 5),
        "numaNodeAffinity": ["0", "1"] if rng.random() < 0.01 else [],
        "devices": _devices(rng, family),
        "nics": nics,
        "guestNetworks": [
            {"device": str(n["deviceKey"]), "mac": n["mac"], "ip": ip, "origin": "dhcp"}
            for n in nics[:1]
        ]
        if power == "poweredOn"
        else [],
        "guestDisks": _guest_disks(rng, family, disks) if power == "poweredOn" else [],
        "host": host,
    }


def vm_documents(n: int, seed: int = 1) -> list[dict]:
    """``n`` VM documents, the same ones for the same ``(n, seed)``; see the module docstring."""
    rng = random.Random(seed)
    hosts = _estate(rng, n)
    placed = [rng.choice(hosts) for _ in range(n)]
    vms = [_vm(rng, i, host) for i, host in enumerate(placed)]
    for vm, host in zip(vms, placed, strict=True):
        if rng.random() < 0.03:  # a DRS VM-host "must run on" rule
            host["cluster"]["hostAffinityVms"].append(_ref("VM", vm["id"]))
    return vms


if __name__ == "__main__":
    import json
    import sys

    docs = vm_documents(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
