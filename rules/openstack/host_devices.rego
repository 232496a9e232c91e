package io.konveyor.forklift.openstack

import rego.v1

# PCI devices (pci_passthrough:alias) and vGPUs (resources:VGPU) requested by the flavor.
openstack_host_devices_specs contains key if {
	some key, _ in input.flavor.extraSpecs
	key in {"pci_passthrough:alias", "resources:VGPU"}
}

concerns contains flag if {
	count(openstack_host_devices_specs) > 0
	flag := {
		"id": "openstack.host_devices.mapped",
		"category": "Warning",
		"label": "Host devices passed through",
		"assessment": concat("", [
			"The VM's flavor gives it devices of the compute host (",
			concat(", ", openstack_host_devices_specs),
			"). They are not attached to the migrated VM. Make the devices available on a target node (host devices or GPUs permitted in the HyperConverged resource) and add them to the VirtualMachine after migration.",
		]),
	}
}
