package io.konveyor.forklift.ovirt

import rego.v1

# Pinning policies the target cannot reproduce ("manual" pinning is judged from cpuAffinity).
ovirt_cpu_pinning_policies := {"dedicated", "isolate_threads", "resize_and_pin_numa"}

concerns contains flag if {
	is_array(input.cpuAffinity)
	count(input.cpuAffinity) > 0
	flag := {
		"id": "ovirt.cpu.tuning.detected",
		"category": "Warning",
		"label": "vCPUs pinned to host CPUs",
		"assessment": "The VM's virtual CPUs are pinned to physical CPUs of its host (CPU tuning). The pinning is not carried over; the target VM's vCPUs float. If the workload needs dedicated CPUs, enable dedicatedCpuPlacement on the target VM after migration.",
	}
}

concerns contains flag if {
	is_string(input.cpuPinningPolicy)
	lower(input.cpuPinningPolicy) in ovirt_cpu_pinning_policies
	flag := {
		"id": "ovirt.cpu.pinning_policy.unsupported",
		"category": "Warning",
		"label": "CPU pinning policy",
		"assessment": concat("", [
			"The VM uses the '",
			input.cpuPinningPolicy,
			"' CPU pinning policy, which is not carried over. If the workload needs dedicated CPUs or a matching NUMA layout, configure dedicatedCpuPlacement (and isolateEmulatorThread or a guest NUMA topology) on the target VM after migration.",
		]),
	}
}

concerns contains flag if {
	is_number(input.cpuShares)
	input.cpuShares > 0
	flag := {
		"id": "ovirt.cpu.shares.defined",
		"category": "Warning",
		"label": "CPU shares set",
		"assessment": "The VM has CPU shares, a relative weight for CPU time on its host. They are not carried over; on the target, CPU time follows the VM's resource requests and limits. Set those after migration if the VM must be favoured or restrained.",
	}
}

concerns contains flag if {
	is_string(input.customCpuModel)
	input.customCpuModel != ""
	flag := {
		"id": "ovirt.cpu.custom_model.detected",
		"category": "Warning",
		"label": "Custom CPU model",
		"assessment": concat("", [
			"The VM uses the custom CPU model '",
			input.customCpuModel,
			"' instead of its cluster's CPU type. The target VM gets the cluster's default CPU model. If the guest needs specific CPU features, set spec.domain.cpu.model on the target VM after migration, and make sure target nodes provide it.",
		]),
	}
}
