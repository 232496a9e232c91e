package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	input.usbEnabled == true
	flag := {
		"id": "ovirt.usb.enabled",
		"category": "Warning",
		"label": "USB support enabled",
		"assessment": "The VM has USB support enabled, so host or client USB devices can be attached to it. The target VM has no USB passthrough or redirection: devices the guest relies on (licence dongles, tokens) must be provided another way after migration.",
	}
}
