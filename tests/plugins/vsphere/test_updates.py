"""The incremental vSphere inventory against govmomi's vCenter simulator: a full read that equals
``read_all``, then only the changes (renames, power, devices, new and destroyed VMs), and a full
read again when the server forgot the filter or the session expired."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugins.vsphere import session
from plugins.vsphere.inventory import KINDS, Snapshot, datacenter_of, read_all
from plugins.vsphere.soapparse import plain
from plugins.vsphere.updates import (
    HEAVY,
    InventoryCache,
    Share,
    apply_updates,
    incomplete,
    parts,
)
from reconciler.sources import SourceError, sha1_fingerprint
from tests.support.vsphere import Simulator, start_simulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A simulator of this module's own: the tests rename, power off, clone and destroy VMs."""
    s = start_simulator(hosts=2, vms=3, datastores=2, clusters=1, password="upd-Secret-5")
    yield s
    s.stop()


def login(sim: Simulator) -> Any:
    return session.connect(sim.url, sim.secret(thumbprint=sha1_fingerprint(sim.host, sim.port)))


@pytest.fixture(scope="module")
def si(sim: Simulator) -> Any:
    return login(sim)


@pytest.fixture
def cache(si: Any) -> Iterator[InventoryCache]:
    with InventoryCache(si) as c:
        yield c


def plain_value(value: Any) -> Any:
    """What two reads are compared on: devices by type and key, other records by type (the
    simulator changes a clone source's disk file names in place without reporting it, so a
    whole-record comparison would test the simulator; test_soapparse compares whole records)."""
    if hasattr(value, "_moId"):
        return value._moId
    if isinstance(value, list):
        return sorted(
            (v["_type"], v["key"]) if isinstance(v, dict) and "key" in v else plain_value(v)
            for v in value
        )
    if isinstance(value, dict):
        return value["_type"]
    return value


def project(snap: Snapshot) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        k.field: {
            moid: {p: plain_value(v) for p, v in props.items() if p != "_obj"}
            for moid, props in getattr(snap, k.field).items()
        }
        for k in KINDS
    }


def wait(task: Any) -> Any:
    from pyVim.task import WaitForTask

    WaitForTask(task)
    return task.info.result


def vm_named(snap: Snapshot, name: str) -> Any:
    return next(p["_obj"] for p in snap.vms.values() if p.get("name") == name)


def test_the_first_snapshot_is_a_full_read_equal_to_read_all(si: Any, cache: InventoryCache):
    snap = cache.snapshot()
    assert cache.last.full and cache.last.reason == "first read"
    assert cache.last.changed == sum(len(getattr(snap, k.field)) for k in KINDS)
    assert project(snap) == project(read_all(si))
    assert len(snap.vms) == 6 and len(snap.hosts) == 3 and len(snap.datastores) == 2
    (dc,) = snap.datacenters.values()
    assert dc["name"] == "DC0" and dc["parent"]._moId == si.content.rootFolder._moId
    assert {f["name"] for f in snap.folders.values()} >= {"vm", "host", "datastore", "network"}
    vm = next(iter(snap.vms.values()))
    assert vm["config.files.vmPathName"].startswith("[LocalDS_")
    ds_id, ds = next(iter(snap.datastores.items()))
    assert ds["parent"]._moId in snap.folders
    in_cluster = next(h for h, p in snap.hosts.items() if p["parent"]._moId in snap.clusters)
    for moid in (vm["_obj"]._moId, ds_id, next(iter(snap.networks)), in_cluster):
        assert datacenter_of(snap, moid) == "DC0"
    assert datacenter_of(snap, "vm-that-is-not-there") is None


def test_changes_arrive_as_one_small_incremental_pass(si: Any, cache: InventoryCache) -> None:
    from pyVmomi import vim

    first = cache.snapshot()
    renamed, stopped, grown = (first.vms[m]["_obj"] for m in sorted(first.vms)[:3])
    old_name = first.vms[renamed._moId]["name"]
    devices = len(first.vms[grown._moId]["config.hardware.device"])
    nic = vim.vm.device.VirtualE1000(
        key=-1,
        backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network"),
    )
    add_nic = vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)

    wait(renamed.Rename_Task("renamed-by-test"))
    wait(stopped.PowerOffVM_Task())
    wait(grown.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[add_nic])))
    second = cache.snapshot()

    assert not cache.last.full
    assert cache.last.changed == 3 and cache.last.round_trips == 1
    assert second.vms[renamed._moId]["name"] == "renamed-by-test"
    assert second.vms[stopped._moId]["runtime.powerState"] == "poweredOff"
    assert len(second.vms[grown._moId]["config.hardware.device"]) == devices + 1
    assert project(second) == project(read_all(si))
    # a snapshot handed out earlier is not changed under its holder
    assert first.vms[renamed._moId]["name"] == old_name
    assert first.hosts is second.hosts  # kinds without changes are shared, not copied


def test_a_new_vm_enters_and_a_destroyed_vm_leaves(si: Any, cache: InventoryCache) -> None:
    from pyVmomi import vim

    first = cache.snapshot()
    source, doomed = (first.vms[m]["_obj"] for m in sorted(first.vms)[-2:])
    spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False)
    clone = wait(source.CloneVM_Task(folder=source.parent, name="clone-by-test", spec=spec))
    if doomed.runtime.powerState == "poweredOn":
        wait(doomed.PowerOffVM_Task())  # changed and destroyed between two passes
    wait(doomed.Destroy_Task())
    second = cache.snapshot()

    assert not cache.last.full and cache.last.changed == 2
    assert second.vms[clone._moId]["name"] == "clone-by-test"
    assert second.vms[clone._moId]["runtime.host"]._moId in second.hosts
    assert doomed._moId in first.vms and doomed._moId not in second.vms
    assert project(second) == project(read_all(si))


def test_a_pass_with_nothing_changed_changes_nothing(cache: InventoryCache) -> None:
    first = cache.snapshot()
    again = cache.snapshot()
    assert not cache.last.full and cache.last.changed == 0 and cache.last.round_trips == 1
    assert again is first


def test_a_collector_the_server_forgot_means_a_full_read(si: Any, cache: InventoryCache) -> None:
    cache.snapshot()
    for obj in [*cache._filters, *(c.collector for c in cache._collectors)]:  # as if dropped
        obj.Destroy()
    snap = cache.snapshot()
    assert cache.last.full and cache.last.reason == "filter gone: vmodl.fault.ManagedObjectNotFound"
    assert project(snap) == project(read_all(si))
    wait(next(iter(snap.vms.values()))["_obj"].Rename_Task("after-the-rebuild"))
    assert vm_named(cache.snapshot(), "after-the-rebuild") is not None
    assert not cache.last.full and cache.last.changed == 1


def test_an_expired_session_logs_in_again_and_reads_everything(sim: Simulator) -> None:
    mine = login(sim)
    logins: list[Any] = []

    def login_again() -> Any:
        logins.append(login(sim))
        return logins[-1]

    with InventoryCache(mine, login=login_again) as cache:
        cache.snapshot()
        mine.content.sessionManager.Logout()
        snap = cache.snapshot()
        assert cache.last.full and cache.last.reason == "session expired"
        assert len(logins) == 1 and cache.si is logins[0]
        assert project(snap) == project(read_all(logins[0]))
        cache.snapshot()
        assert not cache.last.full


def test_an_expired_session_without_a_login_is_a_clear_error(sim: Simulator) -> None:
    mine = login(sim)
    cache = InventoryCache(mine)
    cache.snapshot()
    mine.content.sessionManager.Logout()
    with pytest.raises(SourceError, match="session expired"):
        cache.snapshot()
    cache.si = login(sim)  # the caller logged in again
    cache.snapshot()
    assert cache.last.full and cache.last.reason == "session expired"
    cache.close()


def test_every_kind_of_property_change_is_applied() -> None:
    """Changes the simulator never sends (remove, indirectRemove, element-wise add, missing
    properties), built from pyvmomi's own types and made plain records as the parser makes
    them."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    vm = vim.VirtualMachine("vm-1")
    shares = {"filter-vms": Share(KINDS[0], KINDS[0].props)}
    base = Snapshot(
        vms={
            "vm-1": {"_obj": vm, "name": "a", "snapshot": "x", "guest.ipAddress": "10.0.0.1"},
            "vm-2": {"_obj": vim.VirtualMachine("vm-2"), "name": "b"},
        }
    )

    def change(name: str, op: str, val: Any = None) -> Any:
        return pc.Change(name=name, op=op, val=val)

    updates = pc.UpdateSet(
        version="2",
        filterSet=[
            pc.FilterUpdate(
                filter=pc.Filter("filter-vms"),
                objectSet=[
                    pc.ObjectUpdate(
                        kind="modify",
                        obj=vm,
                        changeSet=[
                            change("name", "assign", "renamed"),
                            change("snapshot", "indirectRemove"),
                            change("runtime.powerState", "assign", "poweredOn"),
                            change("config.hardware.device[4000]", "add", "nic"),
                        ],
                        missingSet=[pc.MissingProperty(path="guest.ipAddress")],
                    ),
                    pc.ObjectUpdate(kind="leave", obj=vim.VirtualMachine("vm-2")),
                    pc.ObjectUpdate(
                        kind="modify",
                        obj=vim.VirtualMachine("vm-3"),
                        changeSet=[change("name", "assign", "never entered")],
                    ),
                ],
            )
        ],
    )
    applied = apply_updates(base, shares, plain(updates))

    assert applied.changed == {"vm-1", "vm-2", "vm-3"}
    assert applied.snapshot.vms["vm-1"] == {
        "_obj": vm,
        "name": "renamed",
        "runtime.powerState": "poweredOn",
    }
    assert "vm-2" not in applied.snapshot.vms
    # an element-wise change and a change to an object never seen are read again, not guessed
    assert set(applied.stale[KINDS[0]]) == {"vm-1", "vm-3"}
    assert base.vms["vm-1"]["name"] == "a" and "vm-2" in base.vms


def test_the_split_cache_reads_what_one_collector_reads(si: Any) -> None:
    """Two collectors (the VMs' devices, everything else) read the same records as one, in
    full and after changes that touch both shares of a VM."""
    from pyVmomi import vim

    with InventoryCache(si) as split, InventoryCache(si, split=False) as whole:
        first = split.snapshot()
        assert first == whole.snapshot()
        assert len(split._collectors) == 2 and len(whole._collectors) == 1
        vm = first.vms[sorted(first.vms)[0]]["_obj"]
        devices = len(first.vms[vm._moId]["config.hardware.device"])
        nic = vim.vm.device.VirtualE1000(
            key=-1,
            backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network"),
        )
        wait(vm.Rename_Task("split-renamed"))
        add_nic = vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)
        wait(vm.ReconfigVM_Task(vim.vm.ConfigSpec(deviceChange=[add_nic])))
        second = split.snapshot()
        assert not split.last.full and split.last.changed == 1
        assert split.last.round_trips == 1  # the two collectors' calls travel side by side
        assert second.vms[vm._moId]["name"] == "split-renamed"
        assert len(second.vms[vm._moId]["config.hardware.device"]) == devices + 1
        assert second == whole.snapshot()


def test_a_vm_created_and_destroyed_is_whole_in_the_split_cache(si: Any) -> None:
    with InventoryCache(si) as cache:
        first = cache.snapshot()
        source = first.vms[sorted(first.vms)[0]]["_obj"]
        from pyVmomi import vim

        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), powerOn=False)
        clone = wait(source.CloneVM_Task(folder=source.parent, name="split-clone", spec=spec))
        second = cache.snapshot()
        record = second.vms[clone._moId]
        assert record["name"] == "split-clone" and record["config.hardware.device"]
        assert set(record) == set(second.vms[source._moId])  # both shares' properties
        wait(clone.Destroy_Task())
        assert clone._moId not in cache.snapshot().vms
        assert project(cache.snapshot()) == project(read_all(si))


def test_one_collector_forgotten_means_a_full_read_and_the_next_pass_works(si: Any) -> None:
    """A fault on one collector's answer while the other's is on its way: that answer is
    given up with its connection, the pass reads everything again, and later passes work."""
    with InventoryCache(si) as cache:
        cache.snapshot()
        devices = cache._collectors[0]
        for flt in devices.shares:
            next(f for f in cache._filters if f._moId == flt).Destroy()
        devices.collector.Destroy()
        snap = cache.snapshot()
        assert cache.last.full and cache.last.reason.startswith("filter gone")
        assert project(snap) == project(read_all(si))
        wait(next(iter(snap.vms.values()))["_obj"].Rename_Task("after-one-was-lost"))
        assert vm_named(cache.snapshot(), "after-one-was-lost") is not None
        assert not cache.last.full and cache.last.changed == 1


def test_split_shares_merge_and_an_object_one_collector_missed_is_read_again() -> None:
    """Each share's ``enter`` sets only its own properties; a VM that one collector reported
    and the other not yet is marked to be read again whole, one both reported is not."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    (heavy,), (light, *_) = parts()
    assert heavy.props == HEAVY and "name" in light.props and not heavy.whole
    vm1, vm2 = vim.VirtualMachine("vm-1"), vim.VirtualMachine("vm-2")
    members: dict[str, set[str]] = {}

    def enter(flt: str, vm: Any, **props: Any) -> Any:
        changes = [
            pc.Change(name=n.replace("_", "."), op="assign", val=v) for n, v in props.items()
        ]
        update = pc.ObjectUpdate(kind="enter", obj=vm, changeSet=changes)
        return plain(
            pc.UpdateSet(
                version="1", filterSet=[pc.FilterUpdate(filter=pc.Filter(flt), objectSet=[update])]
            )
        )

    shares = {"f-heavy": heavy, "f-light": light}
    dev = {
        "config_hardware_device": vim.vm.device.VirtualDevice.Array(
            [vim.vm.device.VirtualE1000(key=4000)]
        )
    }
    applied = apply_updates(Snapshot(), shares, enter("f-light", vm1, name="a"), None, members)
    applied = apply_updates(Snapshot(), shares, enter("f-heavy", vm1, **dev), applied, members)
    applied = apply_updates(Snapshot(), shares, enter("f-light", vm2, name="b"), applied, members)
    # vm-1's light share enters again (its name changed): the heavy share's devices stay
    applied = apply_updates(Snapshot(), shares, enter("f-light", vm1, name="c"), applied, members)
    record = applied.snapshot.vms["vm-1"]
    assert record["name"] == "c" and record["config.hardware.device"][0]["key"] == 4000
    assert members == {"f-heavy": {"vm-1"}, "f-light": {"vm-1", "vm-2"}}
    incomplete(applied, [{"f-heavy": heavy}, {"f-light": light}], members)
    assert set(applied.stale[KINDS[0]]) == {"vm-2"}
    assert Share(KINDS[0], KINDS[0].props).whole
