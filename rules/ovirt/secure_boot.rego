package io.konveyor.forklift.ovirt

import rego.v1

ovirt_secure_boot_bios := "q35_secure_boot"

ovirt_secure_boot_enabled if lower(input.bios) == ovirt_secure_boot_bios

# A VM that follows its cluster's BIOS type.
ovirt_secure_boot_enabled if {
	lower(input.bios) == "cluster_default"
	lower(input.cluster.biosType) == ovirt_secure_boot_bios
}

concerns contains flag if {
	ovirt_secure_boot_enabled
	flag := {
		"id": "ovirt.secure_boot.detected",
		"category": "Warning",
		"label": "UEFI Secure Boot enabled",
		"assessment": "The VM boots with UEFI Secure Boot. The migrated VM boots with UEFI but with Secure Boot turned off. If the guest requires Secure Boot, enable it on the target VirtualMachine (spec.domain.firmware.bootloader.efi.secureBoot, which also needs SMM) after migration.",
	}
}
