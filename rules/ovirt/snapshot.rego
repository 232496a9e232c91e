package io.konveyor.forklift.ovirt

import rego.v1

ovirt_snapshot_with_memory contains object.get(snap, "description", "(no description)") if {
	some snap in input.snapshots
	snap.persistMemory == true
}

concerns contains flag if {
	count(ovirt_snapshot_with_memory) > 0
	flag := {
		"id": "ovirt.snapshot.online_memory.detected",
		"category": "Warning",
		"label": "Snapshot with saved memory",
		"assessment": concat("", [
			"These snapshots include the VM's memory: ",
			concat(", ", ovirt_snapshot_with_memory),
			". Snapshots are not migrated, only the current state of the disks, so the saved memory and the snapshots are lost. Restore or commit what you need before migrating.",
		]),
	}
}
