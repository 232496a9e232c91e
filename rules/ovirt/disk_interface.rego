package io.konveyor.forklift.ovirt

import rego.v1

# Disk interfaces the target keeps; anything else (ide, spapr_vscsi) becomes virtio.
ovirt_disk_interface_supported := {"virtio", "virtio_scsi", "sata"}

ovirt_disk_interface_offenders contains concat("", [name, " (", att.interface, ")"]) if {
	some att in input.diskAttachments
	is_string(att.interface)
	att.interface != ""
	interface := lower(att.interface)
	not interface in ovirt_disk_interface_supported
	name := object.get(att, ["disk", "name"], object.get(att, "id", "(unnamed)"))
}

concerns contains flag if {
	count(ovirt_disk_interface_offenders) > 0
	flag := {
		"id": "ovirt.disk.interface_type.unsupported",
		"category": "Warning",
		"label": "Unsupported disk interface",
		"assessment": concat("", [
			"These disks use an interface that OpenShift Virtualization does not offer: ",
			concat(", ", ovirt_disk_interface_offenders),
			". They are attached as virtio disks on the target. Make sure the guest has virtio drivers and mounts its file systems by UUID or label, since device names change (for example /dev/sda becomes /dev/vda).",
		]),
	}
}
