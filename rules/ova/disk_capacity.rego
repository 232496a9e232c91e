package io.konveyor.forklift.ova

import rego.v1

ova_disk_capacity_zero contains name if {
	some disk in input.disks
	is_number(disk.capacity)
	disk.capacity <= 0
	name := object.get(disk, "file", "")
	name != ""
}

ova_disk_capacity_zero contains name if {
	some disk in input.disks
	is_number(disk.capacity)
	disk.capacity <= 0
	object.get(disk, "file", "") == ""
	name := object.get(disk, "diskId", "(unnamed)")
}

concerns contains flag if {
	count(ova_disk_capacity_zero) > 0
	flag := {
		"id": "ova.disk.capacity.invalid",
		"category": "Critical",
		"label": "Disk with no capacity",
		"assessment": concat("", [
			"The OVF gives these disks a capacity of zero: ",
			concat(", ", ova_disk_capacity_zero),
			". No volume can be created for them, so the migration would fail. Fix the ovf:capacity of the disks in the OVF (or export the VM again), then validate again.",
		]),
	}
}
