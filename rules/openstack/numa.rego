package io.konveyor.forklift.openstack

import rego.v1

openstack_numa_settings contains key if {
	some key in ["hw:numa_nodes", "hw:pci_numa_affinity_policy"]
	input.flavor.extraSpecs[key]
}

openstack_numa_settings contains key if {
	some key in ["hw_numa_nodes", "hw_pci_numa_affinity_policy"]
	input.image.properties[key]
}

concerns contains flag if {
	count(openstack_numa_settings) > 0
	flag := {
		"id": "openstack.numa_tuning.detected",
		"category": "Warning",
		"label": "Guest NUMA topology",
		"assessment": concat("", [
			"The VM's flavor or image shapes its NUMA topology (",
			concat(", ", openstack_numa_settings),
			"). The topology is not carried over. If the workload depends on it, give the target VM dedicated CPUs and a guest NUMA topology (spec.domain.cpu.numa with dedicatedCpuPlacement) after migration.",
		]),
	}
}
