package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
affinity_input := object.filter(input, ["cpuAffinity", "numaNodeAffinity", "id"])

# The cluster's list, read here rather than through cluster.rego's cut: a file that reads only
# the fields it needs lets the validation service evaluate the cluster's rules once per cluster.
affinity_cluster_input := object.filter(input.host.cluster, ["hostAffinityVms"])

concerns contains flag if {
	count(affinity_input.cpuAffinity) > 0
	flag := {
		"id": "vmware.cpu_affinity.detected",
		"category": "Warning",
		"label": "CPU affinity detected",
		"assessment": "The VM is pinned to specific physical CPUs of its ESXi host. The pinning is not migrated. If the workload needs dedicated CPUs, set dedicatedCpuPlacement on the target VM (requires nodes with the CPU manager static policy).",
	}
}

concerns contains flag if {
	count(affinity_input.numaNodeAffinity) > 0
	flag := {
		"id": "vmware.numa_affinity.detected",
		"category": "Warning",
		"label": "NUMA node affinity detected",
		"assessment": "The VM is bound to specific NUMA nodes of its ESXi host. The binding is not migrated. If the workload is NUMA-sensitive, give the target VM dedicated CPUs with guestMappingPassthrough NUMA and hugepages after migration.",
	}
}

# hostAffinityVms: the VMs of the cluster bound to hosts by a DRS VM-host rule.
concerns contains flag if {
	is_string(affinity_input.id)
	some ref in affinity_cluster_input.hostAffinityVms
	ref.id == affinity_input.id
	flag := {
		"id": "vmware.host_affinity.detected",
		"category": "Warning",
		"label": "VM-host affinity rule detected",
		"assessment": "A DRS rule binds the VM to particular ESXi hosts, often for licensing or hardware reasons. The rule is not migrated. Recreate the constraint on the target with node affinity or a node selector on the VM if it still matters.",
	}
}
