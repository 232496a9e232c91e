package io.konveyor.forklift.ovirt

import rego.v1

# How a disk attachment is named in a concern: its disk's name, else the attachment id.
ovirt_disk_limits_name(att) := name if {
	name := object.get(att, ["disk", "name"], "")
	is_string(name)
	name != ""
} else := object.get(att, "id", "(unnamed)")

# An image disk with no provisioned size (bytes) cannot get a target volume.
ovirt_disk_limits_empty contains ovirt_disk_limits_name(att) if {
	some att in input.diskAttachments
	is_number(att.disk.provisionedSize)
	att.disk.provisionedSize <= 0
}

concerns contains flag if {
	count(ovirt_disk_limits_empty) > 0
	flag := {
		"id": "ovirt.disk.capacity.invalid",
		"category": "Critical",
		"label": "Disk with no capacity",
		"assessment": concat("", [
			"oVirt gives these disks a provisioned size of zero or less: ",
			concat(", ", sort(ovirt_disk_limits_empty)),
			". No volume can be created for them, so the migration would fail. Check the disks in oVirt (resize or remove them), then validate again.",
		]),
	}
}

# OpenShift Virtualization attaches at most this many disks to a VM.
ovirt_disk_limits_max := 165

concerns contains flag if {
	count(input.diskAttachments) > ovirt_disk_limits_max
	flag := {
		"id": "ovirt.disk.count.exceeds.limit",
		"category": "Warning",
		"label": "More disks than a target VM can have",
		"assessment": concat("", [
			"The VM has ", sprintf("%v", [count(input.diskAttachments)]), " disks; a VM on OpenShift ",
			"Virtualization can have at most ", sprintf("%v", [ovirt_disk_limits_max]),
			". Merge or remove disks before migrating, or the migrated VM will not start.",
		]),
	}
}
