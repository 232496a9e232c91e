package io.konveyor.forklift.ovirt

import rego.v1

ovirt_nic_passthrough_nics contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	lower(nic.interface) == "pci_passthrough"
}

ovirt_nic_passthrough_nics contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	nic.profile.passThrough == true
}

concerns contains flag if {
	count(ovirt_nic_passthrough_nics) > 0
	flag := {
		"id": "ovirt.nic.pci_passthrough.detected",
		"category": "Warning",
		"label": "NIC with PCI passthrough (SR-IOV)",
		"assessment": concat("", [
			"These NICs pass a host network function through to the guest: ",
			concat(", ", ovirt_nic_passthrough_nics),
			". The migrated VM gets an emulated NIC instead unless it is mapped to an SR-IOV network on the target. Set up the SR-IOV network operator and map the network to an SR-IOV network attachment definition, and make sure the guest has drivers for the new NIC.",
		]),
	}
}
