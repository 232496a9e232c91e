package io.konveyor.forklift.ovirt

import rego.v1

concerns contains flag if {
	is_array(input.numaNodeAffinity)
	count(input.numaNodeAffinity) > 0
	flag := {
		"id": "ovirt.numa.tuning.detected",
		"category": "Warning",
		"label": "VM pinned to host NUMA nodes",
		"assessment": "The VM's virtual NUMA nodes are pinned to NUMA nodes of its host. The pinning is not carried over. If the workload depends on it, give the target VM dedicated CPUs and a guest NUMA topology (spec.domain.cpu.numa with dedicatedCpuPlacement) after migration.",
	}
}
