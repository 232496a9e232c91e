package io.konveyor.forklift.ovirt

import rego.v1

ovirt_nic_plugged_unplugged contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	nic.plugged == false
}

concerns contains flag if {
	count(ovirt_nic_plugged_unplugged) > 0
	flag := {
		"id": "ovirt.nic.unplugged.detected",
		"category": "Warning",
		"label": "Unplugged NIC",
		"assessment": concat("", [
			"These NICs are unplugged on the source: ",
			concat(", ", ovirt_nic_plugged_unplugged),
			". They are created plugged in on the target, so the guest sees and may use them. Map their network to 'ignored' in the NetworkMap to leave them out, or unplug them after migration.",
		]),
	}
}
