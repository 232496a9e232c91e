package io.konveyor.forklift.openstack

import rego.v1

# A vTPM is requested by the flavor (hw:tpm_version) or by the image (hw_tpm_version).
openstack_tpm_versions contains v if {
	v := input.flavor.extraSpecs["hw:tpm_version"]
	is_string(v)
	v != ""
}

openstack_tpm_versions contains v if {
	v := input.image.properties.hw_tpm_version
	is_string(v)
	v != ""
}

concerns contains flag if {
	count(openstack_tpm_versions) > 0
	flag := {
		"id": "mtv-gitops.openstack.tpm.present",
		"category": "Warning",
		"label": "VM has a virtual TPM",
		"assessment": "The VM's flavor or image gives it a virtual TPM. The TPM's contents are not migrated, so secrets sealed in it, such as BitLocker or LUKS keys, are lost. Suspend BitLocker (or add another LUKS key) and keep the recovery keys before migrating, and add a persistent TPM device to the target VM if the guest needs one.",
	}
}
