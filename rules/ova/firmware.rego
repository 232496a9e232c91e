package io.konveyor.forklift.ova

import rego.v1

concerns contains flag if {
	is_string(input.firmware)
	lower(input.firmware) in {"efi", "uefi"}
	flag := {
		"id": "mtv-gitops.ova.firmware.uefi",
		"category": "Information",
		"label": "UEFI firmware",
		"assessment": "The VM boots with UEFI firmware. The migrated VM boots with UEFI as well, with Secure Boot off; UEFI variables of the source, such as custom boot entries, are not part of the OVA, so check that the guest boots and fix its boot entry if needed.",
	}
}
