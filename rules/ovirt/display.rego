package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_string(input.display)
	lower(input.display) == "spice"
	flag := {
		"id": "ovirt.display_type.spice.enabled",
		"category": "Information",
		"label": "SPICE display",
		"assessment": "The VM's console uses SPICE. The target VM's console is VNC, so SPICE features (several monitors, USB redirection, shared clipboard) are not available after migration.",
	}
}
