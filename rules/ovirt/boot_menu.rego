package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	input.bootMenuEnabled == true
	flag := {
		"id": "ovirt.bios.boot_menu.enabled",
		"category": "Warning",
		"label": "BIOS boot menu enabled",
		"assessment": "The VM shows a boot menu when it starts. The target VM boots from its first disk without a menu; set the boot order of its disks after migration if it must boot from another device.",
	}
}
