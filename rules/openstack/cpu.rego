package io.konveyor.forklift.openstack

import rego.v1

openstack_cpu_policies contains lower(v) if {
	v := input.flavor.extraSpecs["hw:cpu_policy"]
	is_string(v)
}

openstack_cpu_policies contains lower(v) if {
	v := input.image.properties.hw_cpu_policy
	is_string(v)
}

concerns contains flag if {
	"dedicated" in openstack_cpu_policies
	flag := {
		"id": "mtv-gitops.openstack.cpu.dedicated",
		"category": "Warning",
		"label": "Dedicated (pinned) CPUs",
		"assessment": "The VM's flavor or image pins its vCPUs to dedicated host CPUs (hw:cpu_policy=dedicated). The pinning is not carried over; the target VM's vCPUs float. If the workload needs dedicated CPUs, enable dedicatedCpuPlacement on the target VM after migration.",
	}
}

concerns contains flag if {
	input.flavor.extraSpecs["quota:cpu_shares"]
	flag := {
		"id": "openstack.cpu.shares.defined",
		"category": "Warning",
		"label": "CPU shares set",
		"assessment": "The VM's flavor sets CPU shares (quota:cpu_shares), a relative weight for CPU time on the compute host. They are not carried over; on the target, CPU time follows the VM's resource requests and limits. Set those after migration if the VM must be favoured or restrained.",
	}
}

# Other resource limits of the flavor (CPU quota and period, disk and network I/O limits).
openstack_cpu_other_quotas contains key if {
	some key, _ in input.flavor.extraSpecs
	startswith(key, "quota:")
	key != "quota:cpu_shares"
}

concerns contains flag if {
	count(openstack_cpu_other_quotas) > 0
	flag := {
		"id": "mtv-gitops.openstack.flavor.quota",
		"category": "Information",
		"label": "Flavor resource limits",
		"assessment": concat("", [
			"The VM's flavor limits its resources (",
			concat(", ", openstack_cpu_other_quotas),
			"). The limits are not carried over; set resource limits or I/O throttling on the target VM after migration if you need them.",
		]),
	}
}
