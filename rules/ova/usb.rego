package io.konveyor.forklift.ova

import rego.v1

ova_usb_devices contains device.kind if {
	some device in input.devices
	is_string(device.kind)
	contains(lower(device.kind), "usb")
}

concerns contains flag if {
	count(ova_usb_devices) > 0
	flag := {
		"id": "mtv-gitops.ova.usb.controller",
		"category": "Information",
		"label": "USB controller",
		"assessment": concat("", [
			"The OVF describes USB hardware (",
			concat(", ", ova_usb_devices),
			"). It is not recreated on the target, and USB devices connected to the source are not available there. Provide devices the guest relies on (licence dongles, tokens) another way after migration.",
		]),
	}
}
