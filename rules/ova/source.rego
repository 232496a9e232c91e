package io.konveyor.forklift.ova

import rego.v1

# ovaSource: the product that exported the OVA, guessed from the OVF's namespaces
# (VMware, VirtualBox, Xen, oVirt or Unknown).
concerns contains flag if {
	is_string(input.ovaSource)
	input.ovaSource != ""
	lower(input.ovaSource) != "vmware"
	flag := {
		"id": "ova.source.unsupported",
		"category": "Warning",
		"label": "OVA not exported by VMware",
		"assessment": concat("", [
			"The OVA was not exported by a VMware product (source: ",
			input.ovaSource,
			"). Other exporters describe hardware differently, so check the migrated VM's disks, NICs and firmware, and that it boots.",
		]),
	}
}
