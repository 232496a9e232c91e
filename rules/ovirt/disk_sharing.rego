package io.konveyor.forklift.ovirt

import rego.v1

ovirt_disk_sharing_name(att) := att.disk.name if {
	is_string(att.disk.name)
	att.disk.name != ""
} else := att.disk.id if {
	is_string(att.disk.id)
} else := "(unnamed)"

ovirt_disk_sharing_shared contains ovirt_disk_sharing_name(att) if {
	some att in input.diskAttachments
	att.disk.shared == true
}

ovirt_disk_sharing_scsi_reservation contains ovirt_disk_sharing_name(att) if {
	some att in input.diskAttachments
	att.scsiReservation == true
}

concerns contains flag if {
	count(ovirt_disk_sharing_shared) > 0
	flag := {
		"id": "ovirt.disk.shared.detected",
		"category": "Warning",
		"label": "Shared disk",
		"assessment": concat("", [
			"These disks are shareable and may be attached to other VMs: ",
			concat(", ", ovirt_disk_sharing_shared),
			". The migrated VM gets its own copy, which is no longer shared, and writes made by other VMs after the copy are not included. Plan how the VMs that share the disk move together, or re-create the shared storage on the target (a ReadWriteMany volume) and attach it after migration.",
		]),
	}
}

concerns contains flag if {
	count(ovirt_disk_sharing_scsi_reservation) > 0
	flag := {
		"id": "ovirt.disk.scsi_reservation.enabled",
		"category": "Warning",
		"label": "Disk uses SCSI reservation",
		"assessment": concat("", [
			"SCSI reservation (persistent reservations, typically for guest clusters) is enabled on: ",
			concat(", ", ovirt_disk_sharing_scsi_reservation),
			". It is not configured on the target; set up the guest cluster's fencing again after migration.",
		]),
	}
}
