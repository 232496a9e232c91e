package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	input.haEnabled == true
	flag := {
		"id": "ovirt.ha.enabled",
		"category": "Warning",
		"label": "VM is highly available",
		"assessment": "The VM is highly available in oVirt: it is restarted, on another host if needed, when it fails. That setting is not carried over. Give the target VM runStrategy Always so that it is restarted, and use storage with ReadWriteMany access if it must be able to move between nodes.",
	}
}

concerns contains flag if {
	input.cluster.haReservation == true
	flag := {
		"id": "ovirt.ha.reservation.enabled",
		"category": "Warning",
		"label": "Cluster reserves capacity for HA VMs",
		"assessment": "The VM's oVirt cluster keeps spare capacity so that highly available VMs can be restarted when a host fails. There is no such reservation on the target; size the target cluster with spare capacity if you rely on it.",
	}
}
