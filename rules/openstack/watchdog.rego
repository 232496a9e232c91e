package io.konveyor.forklift.openstack

import rego.v1

# hw:watchdog_action (flavor) or hw_watchdog_action (image); "disabled" means no watchdog.
openstack_watchdog_actions contains lower(v) if {
	v := input.flavor.extraSpecs["hw:watchdog_action"]
	is_string(v)
}

openstack_watchdog_actions contains lower(v) if {
	v := input.image.properties.hw_watchdog_action
	is_string(v)
}

openstack_watchdog_enabled contains action if {
	some action in openstack_watchdog_actions
	not action in {"", "disabled"}
}

concerns contains flag if {
	count(openstack_watchdog_enabled) > 0
	flag := {
		"id": "openstack.watchdog.detected",
		"category": "Warning",
		"label": "Watchdog device",
		"assessment": concat("", [
			"The VM's flavor or image gives it a watchdog device (action: ",
			concat(", ", openstack_watchdog_enabled),
			"). It is not carried over. If you rely on it, add an i6300esb watchdog to the target VM (spec.domain.devices.watchdog) after migration.",
		]),
	}
}
