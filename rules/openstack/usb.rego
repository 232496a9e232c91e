package io.konveyor.forklift.openstack

import rego.v1

# OpenStack exposes USB only as the pointer device: hw:pointer_model / hw_pointer_model=usbtablet.
openstack_usb_pointer_models contains lower(v) if {
	v := input.flavor.extraSpecs["hw:pointer_model"]
	is_string(v)
}

openstack_usb_pointer_models contains lower(v) if {
	v := input.image.properties.hw_pointer_model
	is_string(v)
}

concerns contains flag if {
	"usbtablet" in openstack_usb_pointer_models
	flag := {
		"id": "mtv-gitops.openstack.usb.tablet",
		"category": "Information",
		"label": "USB tablet pointer",
		"assessment": "The VM's flavor or image gives it a USB tablet as pointing device, so that the console pointer follows the mouse. The target VM does not get one; add a tablet input device (spec.domain.devices.inputs, bus usb) after migration if console users need it.",
	}
}
