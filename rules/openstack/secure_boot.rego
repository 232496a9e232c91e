package io.konveyor.forklift.openstack

import rego.v1

# Secure Boot is on when the flavor (os:secure_boot) or the image (os_secure_boot) requires it.
openstack_secure_boot_settings contains lower(v) if {
	v := input.flavor.extraSpecs["os:secure_boot"]
	is_string(v)
}

openstack_secure_boot_settings contains lower(v) if {
	v := input.image.properties.os_secure_boot
	is_string(v)
}

concerns contains flag if {
	"required" in openstack_secure_boot_settings
	flag := {
		"id": "openstack.secure_boot.detected",
		"category": "Warning",
		"label": "UEFI Secure Boot enabled",
		"assessment": "The VM's flavor or image requires UEFI Secure Boot. The migrated VM boots with UEFI but with Secure Boot turned off. If the guest requires Secure Boot, enable it on the target VirtualMachine (spec.domain.firmware.bootloader.efi.secureBoot, which also needs SMM) after migration.",
	}
}
