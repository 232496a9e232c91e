package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
cbt_input := object.filter(input, ["changeTrackingEnabled"])

cbt_disabled_on_vm if {
	cbt_input.changeTrackingEnabled == false
}

concerns contains flag if {
	cbt_disabled_on_vm
	flag := {
		"id": "vmware.changed_block_tracking.disabled",
		"category": "Warning",
		"label": "Changed block tracking (CBT) is disabled",
		"assessment": "Changed block tracking is not enabled on the VM, so a warm migration is not possible: each precopy round needs the blocks changed since the previous snapshot. A cold migration works. To migrate warm, set ctkEnabled = TRUE in the VM's advanced settings and scsiX:Y.ctkEnabled = TRUE for each disk, then take and delete a snapshot (or power cycle the VM) so that the setting takes effect.",
	}
}

# Disks are reported on their own only when the VM-wide setting is not already reported.
concerns contains flag if {
	not cbt_disabled_on_vm
	disks := [d | some d in disk_list; d.changeTrackingEnabled == false]
	count(disks) > 0
	flag := {
		"id": "vmware.changed_block_tracking.disk.disabled",
		"category": "Warning",
		"label": "Changed block tracking (CBT) is disabled on some disks",
		"assessment": concat("", [
			"Changed block tracking is not enabled for disk(s) ", disk_names(disks), ", so the ",
			"VM cannot be migrated warm; a cold migration works. Set scsiX:Y.ctkEnabled = TRUE (or the ",
			"matching sata/nvme key) for those disks, then take and delete a snapshot or power cycle the ",
			"VM.",
		]),
	}
}
