package io.konveyor.forklift.ova

import rego.v1

# devices[].kind is the element name of each "other" hardware item of the OVF.
ova_tpm_devices contains device.kind if {
	some device in input.devices
	is_string(device.kind)
	kind := lower(device.kind)
	regex.match(`(^|[^a-z])v?tpm([^a-z]|$)|trusted platform`, kind)
}

concerns contains flag if {
	count(ova_tpm_devices) > 0
	flag := {
		"id": "mtv-gitops.ova.tpm.present",
		"category": "Warning",
		"label": "VM has a virtual TPM",
		"assessment": "The OVF describes a virtual TPM. A TPM's contents are never part of an export, so secrets sealed in it, such as BitLocker keys, are lost. Make sure the recovery keys are at hand before starting the migrated VM, and add a persistent TPM device to the target VM if the guest needs one.",
	}
}
