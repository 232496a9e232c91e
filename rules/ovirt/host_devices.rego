package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_array(input.hostDevices)
	count(input.hostDevices) > 0
	flag := {
		"id": "ovirt.host_devices.mapped",
		"category": "Warning",
		"label": "Host devices passed through",
		"assessment": "The VM uses devices of its host directly (PCI, USB or SCSI passthrough, mediated devices such as vGPUs). They are not attached to the migrated VM. Make the devices available on a target node (host devices or GPUs permitted in the HyperConverged resource) and add them to the VirtualMachine after migration.",
	}
}
