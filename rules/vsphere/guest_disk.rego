package io.konveyor.forklift.vmware

import rego.v1

# The guest's file systems, as VMware Tools reports them (guestDisks[]: diskPath, freeSpace in
# bytes, key of the virtual disk holding the file system).

guest_disk_input := object.filter(input, ["guestDisks", "guestId"])

guest_disk_mb := 1048576

# Free space the guest conversion (virt-v2v) needs in a file system, in MB: 100 for the root and
# for Windows' C:, 50 for /boot, 10 for any other (the virt-v2v manual, "Disk space").
guest_disk_needed_mb(path) := 100 if {
	path == "/"
} else := 50 if {
	path == "/boot"
} else := 100 if {
	lower(path) in {"c:", "c:\\", "c:/"}
} else := 10

# Most guests have room everywhere: one walk (a comprehension, cheaper than a rule body) finds
# the file systems under the largest need, and only those are looked at closely.
guest_disk_tight := [d |
	some d in guest_disk_input.guestDisks
	d.freeSpace < 104857600
]

guest_disk_short contains concat("", [
	text_safe(d.diskPath), " (", text_number(floor(d.freeSpace / guest_disk_mb)), " MB free, ",
	text_number(needed), " MB needed)",
]) if {
	some d in guest_disk_tight
	is_string(d.diskPath)
	is_number(d.freeSpace)
	needed := guest_disk_needed_mb(d.diskPath)
	d.freeSpace < needed * guest_disk_mb
}

concerns contains flag if {
	count(guest_disk_short) > 0
	flag := {
		"id": "vmware.guestDisks.freespace",
		"category": "Critical",
		"label": "Not enough free space in the guest for its conversion",
		"assessment": concat("", [
			"The guest conversion (virt-v2v) writes drivers and configuration into the guest's file ",
			"systems and fails when they are too full. Too little free space on: ",
			concat(", ", sort(guest_disk_short)),
			". Free up space in the guest (remove old kernels, logs, temporary files) before migrating.",
		]),
	}
}

# A Windows guest whose file systems are not tied to a virtual disk (no disk key): a drive letter
# cannot be told for each disk, so names of volumes made from drive letters cannot be resolved.
guest_disk_windows if contains(lower(guest_disk_input.guestId), "windows")

guest_disk_unmapped contains text_safe(d.diskPath) if {
	guest_disk_windows
	some d in guest_disk_input.guestDisks
	object.get(d, "key", 0) == 0
}

concerns contains flag if {
	count(guest_disk_unmapped) > 0
	flag := {
		"id": "vmware.guestDisks.key.not_found",
		"category": "Information",
		"label": "Guest file systems not tied to a virtual disk",
		"assessment": concat("", [
			"VMware Tools reports these file systems of the Windows guest without the virtual disk ",
			"that holds them: ", concat(", ", sort(guest_disk_unmapped)),
			". Their drive letters cannot be used to name the migrated disks; the disks get names of ",
			"their own.",
		]),
	}
}
