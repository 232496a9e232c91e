package io.konveyor.forklift.ovirt

import rego.v1

# "image" disks are copied; "lun" disks are handed over; anything else cannot be read.
ovirt_disk_storage_type_copied := {"image", "lun"}

ovirt_disk_storage_type_name(att) := att.disk.name if {
	is_string(att.disk.name)
	att.disk.name != ""
} else := att.disk.id if {
	is_string(att.disk.id)
} else := "(unnamed)"

ovirt_disk_storage_type_luns contains ovirt_disk_storage_type_name(att) if {
	some att in input.diskAttachments
	is_string(att.disk.storageType)
	lower(att.disk.storageType) == "lun"
}

ovirt_disk_storage_type_others contains concat("", [ovirt_disk_storage_type_name(att), " (", type, ")"]) if {
	some att in input.diskAttachments
	is_string(att.disk.storageType)
	type := att.disk.storageType
	type != ""
	lowered := lower(type)
	not lowered in ovirt_disk_storage_type_copied
}

concerns contains flag if {
	count(ovirt_disk_storage_type_luns) > 0
	flag := {
		"id": "mtv-gitops.ovirt.disk.lun",
		"category": "Warning",
		"label": "Direct LUN disk",
		"assessment": concat("", [
			"These disks are direct LUNs: ",
			concat(", ", ovirt_disk_storage_type_luns),
			". A LUN is not copied with the VM. Present the LUN to the target cluster (for example as a PersistentVolume) and attach it to the migrated VM, and make sure the source VM no longer uses it.",
		]),
	}
}

concerns contains flag if {
	count(ovirt_disk_storage_type_others) > 0
	flag := {
		"id": "ovirt.disk.storage_type.unsupported",
		"category": "Critical",
		"label": "Unsupported disk storage type",
		"assessment": concat("", [
			"These disks are neither image disks nor direct LUNs: ",
			concat(", ", ovirt_disk_storage_type_others),
			". Cinder and managed block storage disks cannot be transferred. Move the data to an image disk in oVirt, or detach the disk, before migrating.",
		]),
	}
}
