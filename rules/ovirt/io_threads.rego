package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_number(input.ioThreads)
	input.ioThreads > 1
	flag := {
		"id": "ovirt.iothreads.configured",
		"category": "Information",
		"label": "Several I/O threads",
		"assessment": "The VM uses several I/O threads for its disks. That setting is not carried over; set ioThreadsPolicy (and dedicatedIOThread on busy disks) on the target VM after migration if disk throughput matters.",
	}
}
