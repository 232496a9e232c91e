package io.konveyor.forklift.ovirt

import rego.v1

# oVirt gives these guests a virtual TPM whether or not it was asked for.
ovirt_tpm_required_by_os(os_type) if regex.match(`^windows_(11|2022|2025)`, os_type)

ovirt_tpm_present if input.tpmEnabled == true

ovirt_tpm_present if {
	is_string(input.osType)
	ovirt_tpm_required_by_os(lower(input.osType))
}

concerns contains flag if {
	ovirt_tpm_present
	flag := {
		"id": "mtv-gitops.ovirt.tpm.present",
		"category": "Warning",
		"label": "VM has a virtual TPM",
		"assessment": "The VM has a virtual TPM (Windows 11 and Windows Server 2022 always get one in oVirt). The TPM's contents are not migrated, so secrets sealed in it, such as BitLocker keys, are lost. Suspend BitLocker and keep the recovery keys before migrating, and add a persistent TPM device to the target VM if the guest needs one.",
	}
}
