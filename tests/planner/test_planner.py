"""decide(): readiness, VM resolution, renaming, and which Migration runs what — no I/O."""

from __future__ import annotations

from pathlib import Path

from reconciler.inventory.model import Disk, Inventory, Network, Nic, Storage
from reconciler.manifests.references import check_references
from reconciler.planner.model import PlanDecision
from reconciler.planner.planner import Observed, PlanProgress, decide
from reconciler.progress.store import MigrationRecord, VmProgress
from tests.support.planner import CAPS, PLAN, SRC, GiB, conds, inventory, vm
from tests.support.repo import API, basic_repo, load, write


def migration(root: Path, name: str, cancel: str = "") -> None:
    text = f"apiVersion: {API}\nkind: Migration\nmetadata: {{name: {name}}}\n"
    text += "spec:\n  plan: {name: plan}\n" + cancel
    write(root, f"migrations/{name}.yaml", text)


def run(
    root: Path,
    inv: Inventory | str | None,
    progress: PlanProgress | None = None,
    target_names: set[str] | None = None,
) -> PlanDecision:
    desired = load(root)
    assert desired.errors == []
    observed = Observed(
        {SRC: inv} if inv is not None else {}, {"vms": target_names or set()}, capabilities=CAPS
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: progress or PlanProgress()})
    return d


def test_ready_plan_resolves_vm_disks_and_nics(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    migration(tmp_path, "m1")
    web = vm(
        "vm-1",
        "web01",
        cpus=4,
        cores_per_socket=2,
        memory_mb=4096,
        firmware="efi",
        power_state="On",
        disks=(
            Disk("disk-0", 10 * GiB, "datastore-1", bus="scsi"),
            Disk("disk-1", 5 * GiB, "slow-ds", bus="ide"),
        ),
        nics=(
            Nic("nic-0", "network-1", "00:50:56:aa:bb:01", "vmxnet3"),
            Nic("nic-1", "network-2", "00:50:56:aa:bb:02", "e1000e"),
        ),
    )
    d = run(tmp_path, inventory(web))
    assert d.ready
    assert [(c.type, c.category) for c in d.conditions] == [("Ready", "Required")]
    assert d.source == SRC
    [p] = d.vms
    assert (p.vm_id, p.source_name, p.target_name, p.namespace) == ("vm-1", "web01", "web01", "vms")
    assert (p.cpus, p.cores_per_socket, p.memory_mb, p.firmware, p.power_state) == (
        4,
        2,
        4096,
        "efi",
        "On",
    )
    assert [
        (x.key, x.pvc_name, x.storage_class, x.access_mode, x.volume_mode, x.bus) for x in p.disks
    ] == [
        ("disk-0", "web01-disk-0", "fast", "ReadWriteMany", "Block", "scsi"),
        ("disk-1", "web01-disk-1", "slow", "", "", "virtio"),  # the class decides
    ]
    assert [(n.name, n.mac, n.model, n.dest_type, n.nad) for n in p.nics] == [
        ("nic-0", "00:50:56:aa:bb:01", "virtio", "pod", ""),
        ("nic-1", "00:50:56:aa:bb:02", "e1000e", "multus", "vms/storage-lan"),
    ]
    assert p.labels == {
        "plan": "plan",
        "vmID": "vm-1",
        "app.kubernetes.io/managed-by": "mtv-gitops",
    }
    assert (d.migration, d.run_vms, d.canceled_vms) == ("m1", ["vm-1"], [])


def test_multus_nad_namespace_given_in_the_map_is_kept(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    net = tmp_path / "maps/network.yaml"
    net.write_text(
        net.read_text().replace("name: storage-lan}", "name: storage-lan, namespace: vlans}")
    )
    v = vm("vm-1", "a", nics=(Nic("nic-0", "network-2", "00:50:56:00:00:01"),))
    [nic] = run(tmp_path, inventory(v)).vms[0].nics
    assert (nic.dest_type, nic.nad) == ("multus", "vlans/storage-lan")


def test_vm_not_found_by_id_or_name(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-404\n    - name: ghost\n    - name: b\n")
    d = run(tmp_path, inventory(vm("vm-1", "a"), vm("vm-2", "b")))
    assert not d.ready
    assert conds(d)["VMNotFound"] == (
        "Critical",
        "VMs not found in the source inventory: vm-404, ghost",
    )
    assert [c for c in d.conditions if c.type == "VMNotFound"][0].items == ("vm-404", "ghost")
    assert [p.vm_id for p in d.vms] == ["vm-1", "vm-2"]
    assert "Ready" not in conds(d)


def test_id_wins_over_name(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - {id: vm-2, name: a}\n")
    d = run(tmp_path, inventory(vm("vm-1", "a"), vm("vm-2", "b")))
    assert [p.source_name for p in d.vms] == ["b"]


def test_same_vm_listed_twice(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - name: a\n")
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    assert conds(d)["DuplicateVM"] == ("Critical", "VMs listed more than once: a")
    assert len(d.vms) == 1


def test_unmapped_networks_and_storage_are_listed_per_vm(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n")
    inv = inventory(
        vm("vm-1", "a", nics=(Nic("n0", "network-9"),), disks=(Disk("d0", GiB, "datastore-9"),)),
        vm(
            "vm-2",
            "b",
            nics=(Nic("n0", "network-1"), Nic("n1", "network-3")),
            disks=(Disk("d0", GiB, "datastore-1"), Disk("d1", GiB, "datastore-3")),
        ),
    )
    inv.networks.append(Network("network-3", "DMZ"))
    inv.storages.append(Storage("datastore-3", "archive-ds"))
    d = run(tmp_path, inv)
    assert not d.ready
    c = conds(d)
    assert c["VMNetworksNotMapped"] == (
        "Critical",
        "VM networks not mapped by the NetworkMap: a: network-9, b: DMZ",
    )
    assert c["VMStorageNotMapped"] == (
        "Critical",
        "VM storage not mapped by the StorageMap: a: datastore-9, b: archive-ds",
    )
    assert d.migration == ""


def test_ignored_network_is_planned_as_ignored(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    net = tmp_path / "maps/network.yaml"
    net.write_text(net.read_text().replace("{type: pod}", "{type: ignored}"))
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    assert d.ready
    assert [n.dest_type for n in d.vms[0].nics] == ["ignored"]


def test_renamed_vms_get_mtv_style_names_and_a_warning(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n")
    inv = inventory(
        vm("vm-1", "Web_Server 01"), vm("vm-2", "DB.Primary"), vm("vm-3", "__Ünïcode vm!__")
    )
    d = run(tmp_path, inv)
    assert d.ready
    assert [p.target_name for p in d.vms] == ["web-server01", "dbprimary", "ncodevm"]
    assert [x.pvc_name for x in d.vms[0].disks] == ["web-server01-disk-0"]
    cat, msg = conds(d)["VMNamesChanged"]
    assert cat == "Warning"
    assert msg == (
        "VMs will have other names on the target (Kubernetes needs DNS-1123 names, unique in "
        "the namespace): Web_Server 01 -> web-server01, DB.Primary -> dbprimary, "
        "__Ünïcode vm!__ -> ncodevm"
    )


def test_names_that_collide_after_renaming_get_distinct_stable_names(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n")
    inv = inventory(vm("vm-1", "My_VM"), vm("vm-2", "my-vm"), vm("vm-3", "MY-VM"))
    first = [p.target_name for p in run(tmp_path, inv).vms]
    assert first[0] == "my-vm"
    assert len(set(first)) == 3
    assert all(n.startswith("my-vm-") and len(n) == len("my-vm-") + 4 for n in first[1:])
    assert [p.target_name for p in run(tmp_path, inv).vms] == first

    # once recorded, a VM keeps its name even if the plan's order changes
    progress = PlanProgress([VmProgress(PLAN, "vm-3", "MY-VM", "m1", first[2], result="Failed")])
    basic_repo(tmp_path, vms="    - id: vm-3\n    - id: vm-2\n    - id: vm-1\n")
    again = {p.vm_id: p.target_name for p in run(tmp_path, inv, progress).vms}
    assert again["vm-3"] == first[2]
    assert len(set(again.values())) == 3


def test_name_taken_on_the_target_by_someone_else(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    d = run(tmp_path, inventory(vm("vm-1", "web01")), target_names={"web01"})
    [p] = d.vms
    assert p.target_name.startswith("web01-") and p.target_name != "web01"
    _, msg = conds(d)["VMNamesChanged"]
    assert msg.endswith(f"web01 -> {p.target_name} (name already taken)")
    # ... but not when it is our own VM from an earlier pass
    progress = PlanProgress([VmProgress(PLAN, "vm-1", "web01", "m1", "web01")])
    d = run(tmp_path, inventory(vm("vm-1", "web01")), progress, target_names={"web01"})
    assert d.vms[0].target_name == "web01"


def test_critical_concern_makes_the_plan_not_ready(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n")
    migration(tmp_path, "m1")
    bad = vm(
        "vm-2",
        "b",
        concerns=(
            {"category": "Warning", "label": "Old hardware", "assessment": "meh"},
            {"category": "Critical", "label": "Unreadable disk", "assessment": "disk-0 is gone"},
        ),
    )
    d = run(tmp_path, inventory(vm("vm-1", "a"), bad))
    assert not d.ready
    assert d.vm_errors == {"vm-2": "Unreadable disk: disk-0 is gone"}
    assert conds(d)["VMSourceNotValid"] == (
        "Critical",
        "VMs whose source cannot be read: b: Unreadable disk: disk-0 is gone",
    )
    assert (d.migration, d.skipped_migrations) == ("", {"m1": "the plan is not ready"})


def test_warning_concern_keeps_the_plan_ready(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    w = vm("vm-1", "a", concerns=({"category": "Warning", "label": "x", "assessment": "y"},))
    assert run(tmp_path, inventory(w)).ready


def test_a_warm_vsphere_plan_onto_the_local_target_runs(tmp_path: Path) -> None:
    basic_repo(tmp_path, plan_extra="  warm: true\n")
    migration(tmp_path, "m1")
    d = run(tmp_path, inventory(vm("vm-1", "a", change_tracking=True)))
    assert d.ready and "WarmNotSupported" not in conds(d)
    assert d.warm and d.precopy_interval == 60 * 60  # controller_precopy_interval: 60 minutes
    assert (d.migration, d.run_vms, d.cutover) == ("m1", ["vm-1"], None)
    assert d.migration_file == "migrations/m1.yaml"


def test_a_warm_plan_onto_a_cluster_runs_one_from_another_source_is_refused(
    tmp_path: Path,
) -> None:
    basic_repo(tmp_path, plan_extra="  warm: true\n")
    migration(tmp_path, "m1")
    providers = tmp_path / "providers" / "providers.yaml"
    text = providers.read_text()
    providers.write_text(
        text.replace("  type: openshift\n", "  type: openshift\n  url: https://api.c:6443\n")
    )
    d = run(tmp_path, inventory(vm("vm-1", "a", change_tracking=True)))
    assert d.ready and "WarmNotSupported" not in conds(d)  # the kubevirt target copies rounds
    assert d.warm and (d.migration, d.run_vms) == ("m1", ["vm-1"])
    providers.write_text(text.replace("type: vsphere", "type: ovirt"))
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    cat, msg = conds(d)["WarmNotSupported"]
    assert cat == "Critical" and "not for ovirt" in msg and "set spec.warm: false" in msg
    assert d.migration == "" and d.run_vms == []


def test_source_inventory_missing_or_failed(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    d = run(tmp_path, None)
    assert conds(d) == {
        "SourceProviderNotReady": (
            "Critical",
            "source provider openshift-mtv/vsphere: inventory not read yet",
        )
    }
    d = run(tmp_path, "connection refused")
    assert conds(d)["SourceProviderNotReady"][1] == (
        "source provider openshift-mtv/vsphere: connection refused"
    )


def test_reference_errors_make_the_plan_not_ready(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    (tmp_path / "maps/storage.yaml").unlink()
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    cat, msg = conds(d)["RefNotValid"]
    assert cat == "Critical"
    assert msg == (
        "plans/plan.yaml:12:5: spec.map.storage refers to StorageMap openshift-mtv/sto, which "
        "does not exist (Plan openshift-mtv/plan)"
    )
    assert d.vms == []


def test_one_migration_per_plan_at_a_time(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    migration(tmp_path, "m1")
    migration(tmp_path, "m2")
    inv = inventory(vm("vm-1", "a"))
    d = run(tmp_path, inv)
    assert (d.migration, d.skipped_migrations) == (
        "m1",
        {"m2": "waiting for Migration m1 of the same plan"},
    )
    # m2 started first (recorded, not completed): it keeps running and m1 waits
    progress = PlanProgress(migrations=[MigrationRecord(PLAN, "m2", started="t0")])
    d = run(tmp_path, inv, progress)
    assert (d.migration, d.skipped_migrations) == (
        "m2",
        {"m1": "waiting for Migration m2 of the same plan"},
    )
    # a completed Migration is never run again
    progress = PlanProgress(
        [VmProgress(PLAN, "vm-1", "a", "m1", "a", result="Succeeded")],
        [MigrationRecord(PLAN, "m1", started="t0", completed="t1", result="Succeeded")],
    )
    d = run(tmp_path, inv, progress)
    assert (d.migration, d.run_vms, d.skipped_migrations) == ("m2", [], {})


def test_new_migration_reruns_only_what_did_not_succeed(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n    - id: vm-4\n")
    migration(tmp_path, "m1")
    migration(tmp_path, "m2")
    inv = inventory(vm("vm-1", "a"), vm("vm-2", "b"), vm("vm-3", "c"), vm("vm-4", "d"))
    progress = PlanProgress(
        [
            VmProgress(PLAN, "vm-1", "a", "m1", "a", "Completed", "Succeeded"),
            VmProgress(PLAN, "vm-2", "b", "m1", "b", "CopyDisks", "Failed"),
            VmProgress(PLAN, "vm-3", "c", "m1", "c", "Canceled", "Canceled"),
        ],
        [MigrationRecord(PLAN, "m1", started="t0", completed="t1", result="Failed")],
    )
    d = run(tmp_path, inv, progress)
    assert (d.migration, d.run_vms, d.canceled_vms) == ("m2", ["vm-2", "vm-3", "vm-4"], [])


def test_cancel_by_id_and_by_name(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n")
    migration(tmp_path, "m1", cancel="  cancel:\n    - id: vm-1\n    - name: c\n")
    inv = inventory(vm("vm-1", "a"), vm("vm-2", "b"), vm("vm-3", "c"))
    d = run(tmp_path, inv)
    assert (d.migration, d.run_vms, d.canceled_vms) == ("m1", ["vm-2"], ["vm-1", "vm-3"])


def test_deleted_running_migration_cancels_its_unfinished_vms(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n")
    migration(tmp_path, "m2")
    inv = inventory(vm("vm-1", "a"), vm("vm-2", "b"), vm("vm-3", "c"))
    progress = PlanProgress(
        [
            VmProgress(PLAN, "vm-1", "a", "m1", "a", "Completed", "Succeeded"),
            VmProgress(PLAN, "vm-2", "b", "m1", "b", "CopyDisks"),
            VmProgress(PLAN, "vm-3", "c", "m1", "c", "AllocateDisks"),
        ],
        [MigrationRecord(PLAN, "m1", started="t0")],
    )
    d = run(tmp_path, inv, progress)  # m1's file is gone from the repo
    assert (d.migration, d.run_vms, d.canceled_vms) == ("m1", [], ["vm-2", "vm-3"])
    assert d.skipped_migrations == {}


def test_archived_plan_runs_nothing(tmp_path: Path) -> None:
    basic_repo(tmp_path, plan_extra="  archived: true\n")
    migration(tmp_path, "m1")
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    assert d.ready and d.archived
    assert (d.migration, d.run_vms, d.skipped_migrations) == ("", [], {})
    assert d.refused_migrations["m1"].startswith("refused: Plan plan is archived")
    assert "mtv-gitops plan duplicate" in d.refused_migrations["m1"]
    assert conds(d)["Archived"][0] == "Advisory"


def test_migration_of_another_plan_is_not_considered(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    write(
        tmp_path,
        "migrations/other.yaml",
        f"apiVersion: {API}\nkind: Migration\nmetadata: {{name: other}}\n"
        "spec: {plan: {name: plan, namespace: team-b}}\n",
    )
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    assert (d.migration, d.skipped_migrations) == ("", {})


def test_ova_default_storage_maps_every_disk(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    sto = tmp_path / "maps/storage.yaml"
    sto.write_text(sto.read_text().replace("{id: datastore-1}", "{id: Default}"))
    inv = inventory(
        vm("vm-1", "a", disks=(Disk("d0", GiB, "disk1.vmdk"), Disk("d1", GiB, "disk2.vmdk"))),
        default_storage="Default",
    )
    inv.storages.append(Storage("Default", "Default"))
    d = run(tmp_path, inv)
    assert d.ready
    assert [(x.key, x.storage_class) for x in d.vms[0].disks] == [("d0", "fast"), ("d1", "fast")]
    # without the default, the same disks are unmapped
    inv.default_storage = ""
    d = run(tmp_path, inv)
    assert conds(d)["VMStorageNotMapped"][1] == (
        "VM storage not mapped by the StorageMap: a: disk1.vmdk, a: disk2.vmdk"
    )


def test_a_vms_hooks_are_planned_and_no_longer_warned_of(tmp_path: Path) -> None:
    vms = "    - id: vm-1\n      hooks:\n        - {hook: {name: pre}, step: PreHook}\n"
    basic_repo(tmp_path, vms=vms)
    write(
        tmp_path,
        "hooks/pre.yaml",
        f"apiVersion: {API}\nkind: Hook\nmetadata: {{name: pre}}\nspec: {{}}\n",
    )
    d = run(tmp_path, inventory(vm("vm-1", "a")))
    assert d.ready
    assert "HooksNotRun" not in conds(d)  # hooks run now (issue 18)
    assert d.vms[0].hooks == (("PreHook", "openshift-mtv/pre"),)


def test_decisions_are_one_per_valid_plan_in_stable_order(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    text = (tmp_path / "plans/plan.yaml").read_text()
    write(tmp_path, "plans/a.yaml", text.replace("name: plan", "name: a-plan"))
    write(tmp_path, "plans/bad.yaml", text.replace("name: plan", "name: bad").replace("vms", "vmz"))
    desired = load(tmp_path)
    assert len(desired.errors) == 2  # bad: unknown spec.vmz, missing spec.vms
    decisions = decide(desired, check_references(desired), Observed(), {})
    assert [x.key for x in decisions] == ["openshift-mtv/a-plan", "openshift-mtv/plan"]


def test_critical_rule_concerns_make_the_plan_not_ready_and_name_vm_and_ids(
    tmp_path: Path,
) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n")
    desired = load(tmp_path)
    concerns = {
        "vm-1": (
            {"id": "vmware.disk.rdm", "category": "Critical", "label": "RDM disk"},
            {"id": "vmware.drs.enabled", "category": "Information", "label": "DRS"},
        ),
        "vm-2": ({"id": "vmware.cbt.disabled", "category": "Warning", "label": "CBT off"},),
    }
    observed = Observed(
        {SRC: inventory(vm("vm-1", "web01"), vm("vm-2", "db01"))}, {}, {SRC: concerns}
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    c = conds(d)
    assert not d.ready
    assert c["VMCriticalConcerns"][0] == "Critical"
    assert "web01 (vmware.disk.rdm)" in c["VMCriticalConcerns"][1]
    assert c["VMWarningConcerns"] == (
        "Warning",
        "VMs with warnings from the validation rules (the migration may proceed; read each VM's "
        "concerns): db01 (vmware.cbt.disabled)",
    )
    assert d.concerns["vm-1"][1]["id"] == "vmware.drs.enabled"  # shown per VM, not a condition


def test_warnings_and_information_alone_leave_the_plan_ready(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n")
    concerns = {"vm-1": ({"id": "x", "category": "Information", "label": "i"},)}
    desired = load(tmp_path)
    observed = Observed(
        {SRC: inventory(vm("vm-1", "web01"), vm("vm-2", "db01"))}, {}, {SRC: concerns}
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    assert d.ready and "VMCriticalConcerns" not in conds(d)


def test_the_limit_of_vms_in_flight_comes_from_the_forklift_controller(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    migration(tmp_path, "m1")
    d = run(tmp_path, inventory(vm("vm-1", "web01", host="host-21")))
    assert (d.max_vm_inflight, d.per_host) == (20, True)  # MTV's default, per source host
    assert d.vms[0].host == "host-21"
    write(
        tmp_path,
        "controller.yaml",
        f"apiVersion: {API}\nkind: ForkliftController\n"
        "metadata: {name: forklift-controller, namespace: openshift-mtv}\n"
        "spec:\n  controller_max_vm_inflight: 2\n",
    )
    assert run(tmp_path, inventory(vm("vm-1", "web01"))).max_vm_inflight == 2


def test_map_sources_the_provider_does_not_have_are_named(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n")
    inv = inventory(vm("vm-1", "a"))
    inv.networks = [Network("network-1", "VM Network")]  # "Storage LAN" is gone
    inv.storages = [Storage("datastore-1", "fast-ds")]  # slow-ds is gone
    inv.storages.append(Storage("datastore-7", "other"))
    d = run(tmp_path, inv)
    assert d.ready  # vm-1's own network and datastore are mapped
    c = {x.type: x for x in d.conditions}
    net, sto = c["SourceNetworkNotValid"], c["SourceStorageNotValid"]
    assert net.category == sto.category == "Warning"
    assert net.items == ("name Storage LAN",)
    assert sto.items == ("name slow-ds",)
    assert net.message.startswith("NetworkMap openshift-mtv/")
    assert "maps/network.yaml" in net.message and "openshift-mtv/vsphere" in net.message


def test_every_map_source_found_adds_no_condition(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n")
    c = conds(run(tmp_path, inventory(vm("vm-1", "a"))))
    assert "SourceNetworkNotValid" not in c and "SourceStorageNotValid" not in c


def test_a_destination_that_cannot_be_used_holds_the_plan(tmp_path: Path) -> None:
    basic_repo(tmp_path)
    migration(tmp_path, "m1")
    desired = load(tmp_path)
    observed = Observed(
        {SRC: inventory(vm("vm-1", "web01"))},
        {"vms": set()},
        destination_errors={("openshift-mtv", "host"): "its secret has no 'token'"},
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    assert not d.ready and d.migration == ""
    assert conds(d)["DestinationProviderNotReady"] == (
        "Critical",
        "destination provider openshift-mtv/host: its secret has no 'token'",
    )


def test_a_migrated_vm_deleted_on_the_target_is_reported_not_run_again(tmp_path: Path) -> None:
    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n")
    migration(tmp_path, "m1")
    migration(tmp_path, "m2")
    progress = PlanProgress(
        [
            VmProgress(PLAN, "vm-1", "a", "m1", "a", "Completed", "Succeeded"),
            VmProgress(PLAN, "vm-2", "b", "m1", "b", "Completed", "Succeeded"),
        ],
        [MigrationRecord(PLAN, "m1", started="t0", completed="t1", result="Succeeded")],
    )
    d = run(tmp_path, inventory(vm("vm-1", "a"), vm("vm-2", "b")), progress, {"b"})
    category, message = conds(d)["TargetVMMissing"]
    assert category == "Warning" and d.ready
    assert message.startswith("VirtualMachines deleted on the target after their migration ")
    assert "completed: vms/a. " in message
    assert d.run_vms == []  # a completed migration is not re-created behind the user's back


def test_a_warm_plan_names_the_vms_without_changed_block_tracking(tmp_path: Path) -> None:
    basic_repo(
        tmp_path,
        vms="    - id: vm-1\n    - id: vm-2\n    - id: vm-3\n",
        plan_extra="  warm: true\n",
    )
    inv = inventory(
        vm("vm-1", "tracked", change_tracking=True),
        vm("vm-2", "untracked", change_tracking=False),
        vm("vm-3", "not-applicable"),  # None: the provider has no CBT notion
    )
    d = run(tmp_path, inv)
    cat, msg = conds(d)["VMChangeTrackingDisabled"]
    assert cat == "Critical" and msg.endswith(": untracked")
    assert not d.ready
    basic_repo(tmp_path, vms="    - id: vm-2\n")  # the same VM in a cold plan: no matter
    assert "VMChangeTrackingDisabled" not in conds(run(tmp_path, inv))


def test_a_vm_whose_validation_failed_makes_the_plan_not_ready(tmp_path: Path) -> None:
    from reconciler.validation.service import FAILED_ID

    basic_repo(tmp_path, vms="    - id: vm-1\n    - id: vm-2\n")
    desired = load(tmp_path)
    failed = {"id": FAILED_ID, "category": "Critical", "label": "VM could not be validated"}
    observed = Observed(
        {SRC: inventory(vm("vm-1", "web01"), vm("vm-2", "db01"))}, {}, {SRC: {"vm-1": (failed,)}}
    )
    [d] = decide(desired, check_references(desired), observed, {PLAN: PlanProgress()})
    c = conds(d)
    assert not d.ready
    assert c["VMValidationFailed"][0] == "Critical"
    assert c["VMValidationFailed"][1].endswith(": web01")
    assert "VMCriticalConcerns" not in c  # said once, under its own condition
