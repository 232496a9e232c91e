package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	input.balloonedMemory == true
	flag := {
		"id": "ovirt.memory.ballooning.enabled",
		"category": "Information",
		"label": "Memory balloon enabled",
		"assessment": "The VM has a memory balloon device, which oVirt uses to reclaim unused guest memory. The target VM always gets its full memory; memory overcommitment planned around ballooning does not apply there.",
	}
}
