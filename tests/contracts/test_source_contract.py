"""The contract every source plugin keeps, run against each bundled plugin's real peer.

Each plugin is one fixture below, decorated with ``@source_fixture``: it connects through the
plugin manager (``mtv_gitops.sources`` entry points, as the reconciler does) to a real peer and
says what it prepared, in a :class:`SourceUnderTest`.  Every test here then runs once per
plugin.  **A new plugin (oVirt, OpenStack, a third party's) gets the whole suite by adding one
such fixture**; nothing else in this file names a provider.

What is checked:

- the inventory's shape: VMs with unique ids, disks and NICs; every disk's storage and every
  NIC's network is one the inventory lists; MACs are MACs;
- ``validation_input`` of every VM passes the plugin's default rules (``rules/<type>/``) with
  no errors, through the :class:`Validator` the reconciler uses;
- each disk's extents are sorted, do not overlap and cover exactly ``[0, capacity)``;
- readers return the bytes the extents say, compared with a reference read of the source
  image made without the plugin (``qemu-img convert`` of the OVA's VMDK; the bytes written to
  the simulator's datastore), and zero extents read as zeros there;
- power operations are idempotent (off twice, on twice); a plugin without power control (an
  OVA is an export) accepts them and reports the VM as it is;
- warm methods where the plugin declares warm migration: snapshots created, listed and
  removed (removing an absent one is fine), change ids, the changed areas since a change id
  cover what the guest wrote, and a snapshot's reader returns the disk as it was; a plugin
  that does not declare it is refused as a warm source. The first snapshot is removed before
  the second is taken, the pipeline's order (MTV-1656): a change id outlives its snapshot,
  and an oVirt engine allows one active backup per VM.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugins.ova.factory import DiskSpec, NicSpec, build_ova, semi_random
from reconciler.plugin_manager import connect
from reconciler.progress.store import ProgressStore
from reconciler.sources import (
    SourceConnection,
    SourceError,
    WarmSource,
    prepare_disks,
    sha1_fingerprint,
    warm_source,
)
from reconciler.transfer.extents import DiskReader, Extent
from reconciler.validation.service import ERROR_ID, FAILED_ID, Validator
from tests.support.vsphere import (
    Simulator,
    add_disk,
    content,
    datastore,
    guest_write,
    start_simulator,
    wait,
    write_flat_disk,
)
from tests.support.vsphere import connect as vsphere_admin
from tests.support.vsphere_repo import vms_by_name

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
READ = 4 * MiB  # the most read at once
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class SourceUnderTest:
    """A connected plugin and what its fixture prepared on the peer behind it."""

    provider_type: str
    conn: SourceConnection
    # (vm id, disk key) -> the disk's logical content, read without the plugin (bytes, or an
    # mmap of a large disk: both slice to bytes)
    reference: dict[tuple[str, str], bytes]
    # a VM whose power the suite may switch, and whether the plugin controls power at all
    # (False: the operations are accepted and change nothing, as for an OVA export)
    power_vm: str
    powers_vms: bool = True
    # (vm id, disk key, offset, bytes): the guest writes, for the warm checks; needed only
    # when the plugin declares warm migration
    guest_write: Callable[[str, str, int, bytes], None] | None = None
    warm_vm: str = ""  # a VM with changed block tracking on


SOURCES: list[str] = []  # the fixtures' names, filled by @source_fixture


def source_fixture(fn: Callable[..., Iterator[SourceUnderTest]]):
    """Register one plugin's fixture: every contract test runs against it."""
    SOURCES.append(fn.__name__)
    return pytest.fixture(scope="module")(fn)


def declares_warm(source: SourceUnderTest) -> bool:
    """Whether the plugin says it can run warm migrations.

    Read today from what the connection exposes (the :class:`WarmSource` protocol, as the
    pipeline reads it); once the plugins' capabilities hook lands in reconciler/hookspecs.py,
    this one line asks that hook instead."""
    return _is_warm_source(source.conn)


def _is_warm_source(conn: SourceConnection) -> bool:
    try:
        warm_source(conn)
    except SourceError:
        return False
    return True


# -- one fixture per plugin ---------------------------------------------------------------


def _qemu_raw(vmdk: Path, out: Path) -> bytes:
    """The VMDK's logical content, converted by qemu-img (not by the plugin's reader)."""
    subprocess.run(
        ["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(out)], check=True
    )
    return out.read_bytes()


@source_fixture
def ova(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceUnderTest]:
    """Two real OVAs built by the plugin's factory (qemu-img makes the streamOptimized VMDKs);
    the reference is each VMDK member taken out of the tar and converted by qemu-img."""
    if shutil.which("qemu-img") is None or shutil.which("qemu-nbd") is None:
        pytest.fail("qemu-img / qemu-nbd not installed (make system-deps)", pytrace=False)
    folder = tmp_path_factory.mktemp("ova-contract")
    ovas = folder / "ovas"
    ovas.mkdir()
    build_ova(
        ovas / "web.ova",
        "web",
        cpus=2,
        memory_mb=2048,
        disks=[
            DiskSpec(16 * MiB, [(0, semi_random(MiB, 1)), (5 * MiB + 123, semi_random(70_000, 2))]),
            DiskSpec(8 * MiB, [(3 * MiB, semi_random(2 * MiB, 3))], bus="sata"),
        ],
        nics=[NicSpec("VM Network", "00:50:56:aa:bb:01"), NicSpec("Storage", "00:50:56:aa:bb:02")],
    )
    build_ova(
        ovas / "db.ova",
        "db",
        disks=[DiskSpec(12 * MiB + 4096, [(12 * MiB, semi_random(4096, 4))])],
        nics=[NicSpec("VM Network", "00:50:56:aa:bb:03")],
    )
    conn = connect("ova", str(ovas), {}, {})
    reference: dict[tuple[str, str], bytes] = {}
    work = folder / "reference"
    work.mkdir()
    for vm in conn.inventory().vms:
        ova_path = ovas / f"{vm.name}.ova"
        with tarfile.open(ova_path) as tar:
            for disk in vm.disks:
                member = tar.getmember(disk.file)
                vmdk = work / f"{vm.name}-{Path(disk.file).name}"
                extracted = tar.extractfile(member)
                assert extracted is not None
                vmdk.write_bytes(extracted.read())
                reference[(vm.id, disk.key)] = _qemu_raw(vmdk, vmdk.with_suffix(".raw"))
    power_vm = conn.inventory().vms[0].id
    yield SourceUnderTest("ova", conn, reference, power_vm=power_vm, powers_vms=False)
    conn.close()


@source_fixture
def vsphere() -> Iterator[SourceUnderTest]:
    """govmomi's vCenter simulator: every disk of every VM given known content over the
    datastore's HTTPS endpoint (the reference is those bytes), one VM given a second disk on
    another datastore and changed block tracking (the warm checks run on it)."""
    from pyVmomi import vim

    sim: Simulator = start_simulator(hosts=1, vms=1, datastores=2)
    try:
        admin = vsphere_admin(sim)
        vms = vms_by_name(admin.si)
        warm = vms["DC0_H0_VM0"]
        wait(warm.ReconfigVM_Task(vim.vm.ConfigSpec(changeTrackingEnabled=True)))
        add_disk(admin.si, warm, 6 * MiB + 4096, datastore(admin, "LocalDS_1"))
        reference: dict[tuple[str, str], bytes] = {}
        files: dict[tuple[str, str], str] = {}
        for seed, obj in enumerate(vms_by_name(admin.si).values()):
            for dev in obj.config.hardware.device:
                if isinstance(dev, vim.vm.device.VirtualDisk):
                    blob = content(dev.capacityInKB * 1024, seed=10 * seed + dev.key % 7)
                    write_flat_disk(sim, dev.backing.fileName, blob)
                    reference[(obj._moId, str(dev.key))] = blob
                    files[(obj._moId, str(dev.key))] = dev.backing.fileName
        warm_id = warm._moId
        admin.close()

        def write(vm_id: str, disk_key: str, offset: int, data: bytes) -> None:
            guest_write(sim, files[(vm_id, disk_key)], offset, data)

        conn = connect("vsphere", sim.url, sim.secret(thumbprint=_thumbprint(sim)), {})
        yield SourceUnderTest(
            "vsphere",
            conn,
            reference,
            power_vm=warm_id,
            guest_write=write,
            warm_vm=warm_id,
        )
        conn.close()
    finally:
        sim.stop()


@source_fixture
def ovirt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SourceUnderTest]:
    """The test engine (testpeers/ovirt) in front of the real ovirt-imageio
    daemon and qemu-nbd: a VM with a qcow2 disk with holes and a raw one, a second VM, and a
    VM with two qcow2 disks with incremental backup on (the warm checks: its guest writes
    through qemu-io, so the images' dirty bitmaps record them); the reference is each image
    converted by qemu-img. All are down (an engine refuses to download a running VM's disks
    but through a backup; a backup of a VM that is down is a real engine's "cold backup"); the
    suite switches the first one's power and leaves it as it found it."""
    from tests.support.ovirt_engine import logical, make_world, pattern, qcow2_with_holes

    folder = tmp_path_factory.mktemp("ovirt-contract")
    world = make_world(folder)
    try:
        e = world.engine
        e.set_status(world.web, "down")
        app = e.add_vm(
            "app",
            [
                (
                    qcow2_with_holes(folder / "app-1.qcow2", 8 * MiB, [(0, pattern(MiB, 7))]),
                    "qcow2",
                    "data1",
                    "virtio",
                ),
                (
                    qcow2_with_holes(folder / "app-2.qcow2", 6 * MiB, [(MiB, pattern(MiB, 8))]),
                    "qcow2",
                    "data2",
                    "virtio",
                ),
            ],
            [("nic1", "56:6f:1a:00:00:09", "ovirtmgmt")],
            incremental=True,
        )
        conn = connect("ovirt", e.url, e.secret(), {})
        reference = {}
        for vm_id in (world.web, world.db):
            for a in e.vms[vm_id].attachments:
                reference[(vm_id, a.disk.id)] = world.reference[a.disk.id]
        for a in e.vms[app].attachments:
            d = e.disks[a.disk.id]
            reference[(app, a.disk.id)] = logical(d.image, d.fmt, folder / f"{a.disk.id}.ref")

        def write(vm_id: str, disk_key: str, offset: int, data: bytes) -> None:
            e.guest_write(disk_key, offset, data)

        yield SourceUnderTest(
            "ovirt", conn, reference, power_vm=world.web, guest_write=write, warm_vm=app
        )
        conn.close()
    finally:
        world.peer.stop()


@source_fixture
def openstack(openstack_cloud) -> Iterator[SourceUnderTest]:
    """Real Keystone and Glance with our Nova/Cinder/Neutron (testpeers/openstack/cloud.py):
    every volume of every server is read through a snapshot, a volume and a Glance image; the
    reference is the volume's own bytes. The temporaries are deleted at the end."""
    import mmap

    conn = connect("openstack", openstack_cloud.auth_url, openstack_cloud.secret(), {})
    reference = {}
    for vm in conn.inventory().vms:
        for d in vm.disks:  # 1 GiB volumes (Cinder sizes are whole GiB): mapped, not loaded
            with open(openstack_cloud.standins.path(d.key), "rb") as f:
                reference[(vm.id, d.key)] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    for vm in conn.inventory().vms:  # the temporaries, made as the reconciler makes them
        prepare_disks(conn, vm.id)
    db = openstack_cloud.extra["seed"]["db"]["id"]
    yield SourceUnderTest("openstack", conn, reference, power_vm=db)
    for vm in conn.inventory().vms:
        conn.release(vm.id)
    assert conn.temporaries() == []
    conn.close()


def _thumbprint(sim: Simulator) -> str:
    return sha1_fingerprint(sim.host, sim.port)


@pytest.fixture(params=SOURCES)
def source(request: pytest.FixtureRequest) -> SourceUnderTest:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Validator]:
    store = ProgressStore(tmp_path_factory.mktemp("validation") / "progress.db")
    v = Validator(store, eval_timeout=60.0)
    yield v
    v.close()
    store.close()


# -- the contract ---------------------------------------------------------------------------


def test_inventory_shape(source: SourceUnderTest) -> None:
    inv = source.conn.inventory()
    assert inv.vms, "an inventory with no VMs checks nothing"
    ids = [vm.id for vm in inv.vms]
    assert len(set(ids)) == len(ids), ids
    networks = {n.id for n in inv.networks}
    storages = {s.id for s in inv.storages} | ({inv.default_storage} - {""})
    assert len(networks) == len(inv.networks) and len(storages) >= len(inv.storages)
    for vm in inv.vms:
        assert vm.name and vm.cpus >= 1 and vm.cores_per_socket >= 1 and vm.memory_mb > 0, vm
        assert vm.firmware in ("bios", "efi"), vm
        assert vm.power_state in ("On", "Off", "Unknown"), vm
        assert isinstance(vm.host, str)
        assert inv.find_vm(id=vm.id) == vm and inv.find_vm(name=vm.name) is not None
        keys = [d.key for d in vm.disks]
        assert keys and len(set(keys)) == len(keys), vm
        for disk in vm.disks:
            assert disk.capacity > 0, disk
            assert disk.storage in storages or inv.default_storage, (disk, storages)
        for nic in vm.nics:
            assert nic.network in networks, (nic, networks)
            assert MAC.match(nic.mac.lower()), nic
        assert [c for c in vm.concerns if c.get("category") == "Critical"] == [], vm.concerns
    prepared = {vm_id for vm_id, _ in source.reference}
    assert prepared <= set(ids)


def test_validation_input_passes_the_default_rules(
    source: SourceUnderTest, validator: Validator
) -> None:
    state = validator.prepare(source.provider_type, None)
    assert state.errors == [], state.errors
    vms = source.conn.inventory().vms
    docs = {vm.id: source.conn.validation_input(vm.id) for vm in vms}
    for vm in vms:
        doc = docs[vm.id]
        assert json.loads(json.dumps(doc, default=str)), vm.id  # a JSON document
        assert doc.get("id") == vm.id and doc.get("name") == vm.name, doc
    verdicts = validator.validate(f"contract/{source.provider_type}", source.provider_type, docs)
    assert set(verdicts) == set(docs)
    for vm_id, verdict in verdicts.items():
        broken = [c for c in verdict.concerns if c.get("id") in (ERROR_ID, FAILED_ID)]
        assert broken == [], (vm_id, broken)
        critical = [c for c in verdict.concerns if c.get("category") == "Critical"]
        assert critical == [], (vm_id, critical)


def _extents(reader: DiskReader) -> list[Extent]:
    return list(reader.extents())


def test_disk_extents_cover_the_disk(source: SourceUnderTest) -> None:
    for vm_id, key in source.reference:
        disk = _disk(source, vm_id, key)
        with _closing(source.conn.open_disk(vm_id, key)) as reader:
            assert reader.size == disk.capacity, (vm_id, key)
            extents = _extents(reader)
        assert extents, (vm_id, key)
        at = 0
        for e in extents:
            assert e.length > 0, e
            assert e.start == at, f"{vm_id}/{key}: a gap or an overlap at {at}: {e}"
            at = e.end
        assert at == disk.capacity, f"{vm_id}/{key}: extents end at {at}, not {disk.capacity}"


def test_readers_return_the_bytes_the_extents_say(source: SourceUnderTest) -> None:
    for (vm_id, key), expected in source.reference.items():
        with _closing(source.conn.open_disk(vm_id, key)) as reader:
            assert reader.size == len(expected), (vm_id, key)
            for e in _extents(reader):
                for off in range(e.start, e.end, READ):
                    n = min(READ, e.end - off)
                    want = expected[off : off + n]
                    if e.zero:
                        assert want == bytes(n), f"{vm_id}/{key}: data in a zero extent {e}"
                    got = reader.read(off, n)
                    assert got == want, f"{vm_id}/{key}: {n} bytes at {off} differ ({e})"


def test_power_operations_are_idempotent(source: SourceUnderTest) -> None:
    conn, vm = source.conn, source.power_vm
    before = conn.power_state(vm)
    assert before in ("On", "Off")
    try:
        conn.power_off(vm, timeout=120)
        conn.power_off(vm, timeout=120)
        assert conn.power_state(vm) == "Off"
        conn.power_on(vm)
        conn.power_on(vm)
        assert conn.power_state(vm) == ("On" if source.powers_vms else "Off")
    finally:
        if before == "On":
            conn.power_on(vm)
        else:
            conn.power_off(vm, timeout=120)
    assert conn.power_state(vm) == before


def test_warm_methods_where_declared(source: SourceUnderTest) -> None:
    if not declares_warm(source):
        with pytest.raises(SourceError):
            warm_source(source.conn)
        return
    assert source.warm_vm and source.guest_write is not None, "a warm plugin's fixture says how"
    conn: WarmSource = warm_source(source.conn)
    vm = source.warm_vm
    tracking = conn.disk_change_tracking(vm)
    keys = [key for vm_id, key in source.reference if vm_id == vm]
    assert keys and all(tracking.get(k) for k in keys), tracking
    first = conn.create_snapshot(vm, "mtv-gitops-contract-1")
    assert conn.snapshots(vm).get(first) == "mtv-gitops-contract-1"
    ids = conn.change_ids(vm, first)
    assert all(ids.get(k) for k in keys), ids
    conn.remove_snapshot(vm, first)  # the pipeline's order: the change ids outlive it
    assert first not in conn.snapshots(vm)

    key = keys[-1]
    capacity = _disk(source, vm, key).capacity
    offset, blob = capacity // 2 + 512, semi_random(12_288, 99)
    source.guest_write(vm, key, offset, blob)
    second = conn.create_snapshot(vm, "mtv-gitops-contract-2")
    try:
        assert conn.snapshots(vm).get(second) == "mtv-gitops-contract-2"
        changed = conn.changed_extents(vm, second, key, ids[key])
        at = 0
        for e in changed:
            assert e.start >= at and e.length > 0 and e.end <= capacity, changed
            at = e.end
        covered = sum(
            max(0, min(e.end, offset + len(blob)) - max(e.start, offset)) for e in changed
        )
        assert covered == len(blob), (changed, offset)
        others = [k for k in keys if k != key]
        for other in others:  # nothing written there since the first snapshot
            assert sum(e.length for e in conn.changed_extents(vm, second, other, ids[other])) == 0
        expected = bytearray(source.reference[(vm, key)])
        expected[offset : offset + len(blob)] = blob
        with _closing(conn.open_disk(vm, key, snapshot_id=second)) as reader:
            assert reader.read(offset - 512, len(blob) + 1024) == bytes(
                expected[offset - 512 : offset + len(blob) + 512]
            )
    finally:
        conn.remove_snapshot(vm, second)
        conn.remove_snapshot(vm, first)
    assert not {first, second} & set(conn.snapshots(vm))
    conn.remove_snapshot(vm, first)  # absent is fine
    source.reference[(vm, key)] = bytes(expected)  # the guest's write stays on the disk


# -- helpers ------------------------------------------------------------------------------


def _disk(source: SourceUnderTest, vm_id: str, key: str):
    vm = source.conn.inventory().find_vm(id=vm_id)
    assert vm is not None, vm_id
    return next(d for d in vm.disks if d.key == key)


class _closing:
    """``with`` for a DiskReader (the protocol has ``close``, not the context manager)."""

    def __init__(self, reader: DiskReader) -> None:
        self.reader = reader

    def __enter__(self) -> DiskReader:
        return self.reader

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
