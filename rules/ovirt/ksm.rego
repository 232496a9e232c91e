package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	input.cluster.ksmEnabled == true
	flag := {
		"id": "ovirt.cluster.ksm_enabled",
		"category": "Warning",
		"label": "Cluster uses KSM",
		"assessment": "The VM's oVirt cluster merges identical memory pages of VMs (kernel samepage merging). Target nodes may not, so the memory the VM really uses can grow. Size target nodes for the VM's full memory, or enable KSM in the HyperConverged resource.",
	}
}
