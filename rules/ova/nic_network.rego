package io.konveyor.forklift.ova

import rego.v1

ova_nic_network_missing contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	nic.network == null
}

ova_nic_network_missing contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	nic.network.id == ""
}

concerns contains flag if {
	count(ova_nic_network_missing) > 0
	flag := {
		"id": "mtv-gitops.ova.nic.no_network",
		"category": "Warning",
		"label": "NIC without a network",
		"assessment": concat("", [
			"These NICs are not connected to any network in the OVF: ",
			concat(", ", ova_nic_network_missing),
			". A NetworkMap cannot map them, so they are left out of the migrated VM. Connect them to a network in the OVF before migrating, or add NICs to the target VM afterwards.",
		]),
	}
}
