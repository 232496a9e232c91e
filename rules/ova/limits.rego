package io.konveyor.forklift.ova

import rego.v1

concerns contains flag if {
	count(input.cpuAffinity) > 0
	flag := {
		"id": "ova.cpu_affinity.detected",
		"category": "Warning",
		"label": "CPU affinity",
		"assessment": "The VM is pinned to physical CPUs of its source host. The pinning is not carried over; the migrated VM's vCPUs float. If the workload needs dedicated CPUs, enable dedicatedCpuPlacement on the target VM after migration.",
	}
}

# OpenShift Virtualization attaches at most this many disks to a VM.
ova_limits_max_disks := 165

concerns contains flag if {
	count(input.disks) > ova_limits_max_disks
	flag := {
		"id": "ova.disk.count.exceeds.limit",
		"category": "Warning",
		"label": "More disks than a target VM can have",
		"assessment": concat("", [
			"The OVF gives the VM ", sprintf("%v", [count(input.disks)]), " disks; a VM on OpenShift ",
			"Virtualization can have at most ", sprintf("%v", [ova_limits_max_disks]),
			". Remove disks from the VM and export it again, or the migrated VM will not start.",
		]),
	}
}
