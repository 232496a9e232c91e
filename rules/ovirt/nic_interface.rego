package io.konveyor.forklift.ovirt

import rego.v1

# NIC models the target has; pci_passthrough is judged by nic_passthrough.rego.
ovirt_nic_interface_kept := {"virtio", "e1000", "e1000e", "rtl8139", "pci_passthrough"}

ovirt_nic_interface_offenders contains concat("", [object.get(nic, "name", "(unnamed)"), " (", nic.interface, ")"]) if {
	some nic in input.nics
	is_string(nic.interface)
	nic.interface != ""
	interface := lower(nic.interface)
	not interface in ovirt_nic_interface_kept
}

concerns contains flag if {
	count(ovirt_nic_interface_offenders) > 0
	flag := {
		"id": "ovirt.nic.interface_type.unsupported",
		"category": "Warning",
		"label": "Unsupported NIC model",
		"assessment": concat("", [
			"These NICs use a model that OpenShift Virtualization does not offer: ",
			concat(", ", ovirt_nic_interface_offenders),
			". They become virtio NICs on the target. Make sure the guest has a virtio network driver, and check network settings that are tied to the old device (interface names, MAC-bound configuration).",
		]),
	}
}
