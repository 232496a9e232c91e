package io.konveyor.forklift.ovirt

import rego.v1

ovirt_disk_status_bad := {"illegal", "locked"}

ovirt_disk_status_name(att) := att.disk.name if {
	is_string(att.disk.name)
	att.disk.name != ""
} else := att.disk.id if {
	is_string(att.disk.id)
} else := "(unnamed)"

ovirt_disk_status_offenders contains concat("", [ovirt_disk_status_name(att), " (", status, ")"]) if {
	some att in input.diskAttachments
	is_string(att.disk.status)
	status := lower(att.disk.status)
	status in ovirt_disk_status_bad
}

concerns contains flag if {
	count(ovirt_disk_status_offenders) > 0
	flag := {
		"id": "ovirt.disk.illegal_or_locked_status",
		"category": "Critical",
		"label": "Disk is illegal or locked",
		"assessment": concat("", [
			"These disks of the VM are illegal or locked: ",
			concat(", ", ovirt_disk_status_offenders),
			". Their data cannot be read reliably, so the copy would fail. Wait for the operation that locks them to finish, or repair the disks in oVirt, then validate again.",
		]),
	}
}

concerns contains flag if {
	input.hasIllegalImages == true
	flag := {
		"id": "ovirt.disk.illegal_images.detected",
		"category": "Critical",
		"label": "VM has illegal disk images",
		"assessment": "Some of the VM's disk images (a disk or a snapshot volume) are marked illegal in oVirt, so the disk chain cannot be read reliably and the copy would fail. Repair the images, for example by removing the failed snapshot, then validate again.",
	}
}
