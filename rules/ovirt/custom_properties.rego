package io.konveyor.forklift.ovirt

import rego.v1

ovirt_custom_properties_names contains object.get(prop, "name", "(unnamed)") if {
	some prop in input.properties
}

concerns contains flag if {
	count(ovirt_custom_properties_names) > 0
	flag := {
		"id": "ovirt.vm.custom_properties.detected",
		"category": "Warning",
		"label": "VM custom properties",
		"assessment": concat("", [
			"The VM has custom properties, which drive VDSM hooks on its host: ",
			concat(", ", ovirt_custom_properties_names),
			". They are not carried over; reproduce their effect on the target VM if the guest depends on it.",
		]),
	}
}
