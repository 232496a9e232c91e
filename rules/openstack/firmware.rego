package io.konveyor.forklift.openstack

import rego.v1

concerns contains flag if {
	is_string(input.image.properties.hw_firmware_type)
	lower(input.image.properties.hw_firmware_type) == "uefi"
	flag := {
		"id": "mtv-gitops.openstack.firmware.uefi",
		"category": "Information",
		"label": "UEFI firmware",
		"assessment": "The VM's image boots it with UEFI firmware. The migrated VM boots with UEFI as well (Secure Boot off); UEFI variables stored by the source, such as custom boot entries, are not migrated, so check the boot order after migration.",
	}
}
