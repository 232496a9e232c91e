package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_array(input.watchDogs)
	count(input.watchDogs) > 0
	flag := {
		"id": "ovirt.watchdog.enabled",
		"category": "Warning",
		"label": "Watchdog device",
		"assessment": "The VM has a watchdog device that acts when the guest stops responding. It is not carried over. If you rely on it, add an i6300esb watchdog to the target VM (spec.domain.devices.watchdog) after migration.",
	}
}
