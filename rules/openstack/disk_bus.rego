package io.konveyor.forklift.openstack

import rego.v1

# Disk buses the target keeps; anything else (ide, usb, fdc, xen...) becomes virtio.
openstack_disk_bus_kept := {"virtio", "scsi", "sata"}

concerns contains flag if {
	is_string(input.image.properties.hw_disk_bus)
	bus := lower(input.image.properties.hw_disk_bus)
	bus != ""
	not bus in openstack_disk_bus_kept
	flag := {
		"id": "openstack.disk.unsupported_interface",
		"category": "Warning",
		"label": "Unsupported disk bus",
		"assessment": concat("", [
			"The VM's image attaches its disks on the '",
			input.image.properties.hw_disk_bus,
			"' bus, which OpenShift Virtualization does not offer. The disks are attached as virtio disks on the target. Make sure the guest has virtio drivers and mounts its file systems by UUID or label, since device names change.",
		]),
	}
}
