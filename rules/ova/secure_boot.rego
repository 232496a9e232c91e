package io.konveyor.forklift.ova

import rego.v1

concerns contains flag if {
	input.secureBoot == true
	flag := {
		"id": "mtv-gitops.ova.secure_boot.enabled",
		"category": "Warning",
		"label": "UEFI Secure Boot enabled",
		"assessment": "The OVF enables UEFI Secure Boot. The migrated VM boots with UEFI but with Secure Boot turned off. If the guest requires Secure Boot, enable it on the target VirtualMachine (spec.domain.firmware.bootloader.efi.secureBoot, which also needs SMM) after migration.",
	}
}
