package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_string(input.storageErrorResumeBehaviour)
	behaviour := lower(input.storageErrorResumeBehaviour)
	behaviour != ""
	behaviour != "auto_resume"
	flag := {
		"id": "ovirt.storage.resume_behavior.unsupported",
		"category": "Information",
		"label": "Storage error resume behaviour",
		"assessment": concat("", [
			"The VM's resume behaviour after a storage error is '",
			input.storageErrorResumeBehaviour,
			"'. On the target a VM paused by a storage error is resumed when the storage is back, as with 'auto_resume'; the configured behaviour is not kept.",
		]),
	}
}
