package io.konveyor.forklift.ova

import rego.v1

# disks[].format is the OVF ovf:format URI of the disk, for example
# http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized

ova_disk_format_name(disk) := disk.file if {
	is_string(disk.file)
	disk.file != ""
} else := disk.diskId if {
	is_string(disk.diskId)
} else := "(unnamed)"

ova_disk_format_of(disk) := lower(disk.format) if {
	is_string(disk.format)
	disk.format != ""
}

ova_disk_format_not_vmdk contains ova_disk_format_name(disk) if {
	some disk in input.disks
	format := ova_disk_format_of(disk)
	not contains(format, "vmdk")
}

ova_disk_format_not_stream_optimized contains ova_disk_format_name(disk) if {
	some disk in input.disks
	format := ova_disk_format_of(disk)
	contains(format, "vmdk")
	not contains(format, "streamoptimized")
}

concerns contains flag if {
	count(ova_disk_format_not_vmdk) > 0
	flag := {
		"id": "mtv-gitops.ova.disk.format.unsupported",
		"category": "Critical",
		"label": "Disk image is not a VMDK",
		"assessment": concat("", [
			"These disk images are not in VMDK format: ",
			concat(", ", ova_disk_format_not_vmdk),
			". Only VMDK disk images can be read from an OVA (exports from oVirt, for example, hold qcow2 images). Convert the disks to stream-optimized VMDK, or export the VM again from a VMware product, then validate again.",
		]),
	}
}

concerns contains flag if {
	count(ova_disk_format_not_stream_optimized) > 0
	flag := {
		"id": "mtv-gitops.ova.disk.format.not_stream_optimized",
		"category": "Warning",
		"label": "VMDK is not stream-optimized",
		"assessment": concat("", [
			"These VMDK disk images are not stream-optimized, the format OVF exports normally use: ",
			concat(", ", ova_disk_format_not_stream_optimized),
			". Monolithic sparse images are read too, but other VMDK variants (flat, split) may not be; if the copy fails, export the VM again as an OVA.",
		]),
	}
}

# The VM has no disk image at all: its OVF lists no disk, or only disks without a file.
concerns contains flag if {
	is_array(input.disks)
	count(input.disks) == 0
	flag := {
		"id": "mtv-gitops.ova.disk.no_image",
		"category": "Warning",
		"label": "No disk image",
		"assessment": "The OVF describes no disk for this VM, so the migrated VM has no disk and nothing to boot from. Check that the OVA is complete; export the VM again with its disks if needed.",
	}
}

concerns contains flag if {
	is_array(input.disks)
	count(input.disks) > 0
	every disk in input.disks {
		disk.fileRef == ""
	}
	flag := {
		"id": "mtv-gitops.ova.disk.no_image",
		"category": "Warning",
		"label": "No disk image",
		"assessment": "The OVF describes the VM's disks but none of them has an image file, so the migrated VM gets only blank disks and nothing to boot from. Check that the OVA is complete; export the VM again with its disks if needed.",
	}
}
