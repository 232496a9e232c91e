package io.konveyor.forklift.openstack

import rego.v1

openstack_boot_menu_settings contains lower(v) if {
	v := input.flavor.extraSpecs["hw:boot_menu"]
	is_string(v)
}

openstack_boot_menu_settings contains lower(v) if {
	v := input.image.properties.hw_boot_menu
	is_string(v)
}

concerns contains flag if {
	"true" in openstack_boot_menu_settings
	flag := {
		"id": "openstack.bios.boot_menu.enabled",
		"category": "Warning",
		"label": "BIOS boot menu enabled",
		"assessment": "The VM's flavor or image shows a boot menu when it starts. The target VM boots from its first disk without a menu; set the boot order of its disks after migration if it must boot from another device.",
	}
}
