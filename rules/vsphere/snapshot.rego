package io.konveyor.forklift.vmware

import rego.v1

# Warm migration gives up after this many snapshots ("warm import retry limit reached");
# vSphere itself allows at most 32 snapshots in a disk's chain.
snapshot_limit := 28

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
snapshot_input := object.filter(input, ["snapshot", "snapshotCount", "consolidationNeeded"])

# The inventory reports the current snapshot as a reference; no snapshot is an empty one.
snapshot_present if {
	id := snapshot_input.snapshot.id
	is_string(id)
	id != ""
}

snapshot_present if {
	kind := snapshot_input.snapshot.kind
	is_string(kind)
	kind != ""
}

# snapshotCount: number of snapshots of the VM (an extension of Forklift's inventory shape).
snapshot_present if {
	n := snapshot_input.snapshotCount
	is_number(n)
	n > 0
}

concerns contains flag if {
	snapshot_present
	flag := {
		"id": "vmware.snapshot.detected",
		"category": "Information",
		"label": "VM has snapshots",
		"assessment": "Snapshots are not migrated: the target VM gets the current state of the disks only. Every snapshot lengthens the chain the copy reads through, and a warm migration adds its own snapshots on top of yours. Delete the snapshots you do not need (or consolidate) before migrating.",
	}
}

concerns contains flag if {
	n := snapshot_input.snapshotCount
	is_number(n)
	n > snapshot_limit
	flag := {
		"id": "mtv-gitops.vmware.snapshot.limit",
		"category": "Critical",
		"label": concat(" ", ["More than", text_number(snapshot_limit), "snapshots"]),
		"assessment": concat("", [
			"The VM has ", text_number(n), " snapshots. A warm migration takes ",
			"one more snapshot per precopy round and stops at ", text_number(snapshot_limit), " (\"warm ",
			"import retry limit reached\"), and vSphere allows no more than 32 in a chain, so a warm ",
			"migration cannot complete and a cold one reads through a very long chain. Delete snapshots ",
			"in vSphere until well under ", text_number(snapshot_limit), " remain, then refresh the ",
			"inventory.",
		]),
	}
}

concerns contains flag if {
	snapshot_input.consolidationNeeded == true
	flag := {
		"id": "vmware.consolidation_needed",
		"category": "Information",
		"label": "Disks need consolidation",
		"assessment": "vSphere reports that the VM's disks need consolidation: snapshot delta files remain that no snapshot refers to any more. They slow down every copy and can make warm migration snapshots fail. Run Snapshots > Consolidate on the VM before migrating.",
	}
}
