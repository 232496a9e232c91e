package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
hardware_input := object.filter(input, [
	"cpuHotAddEnabled", "cpuHotRemoveEnabled", "memoryHotAddEnabled",
	"faultToleranceEnabled", "balloonedMemory",
])

hardware_hotplug_enabled if hardware_input.cpuHotAddEnabled == true

hardware_hotplug_enabled if hardware_input.cpuHotRemoveEnabled == true

hardware_hotplug_enabled if hardware_input.memoryHotAddEnabled == true

# The hot plug features the VM has enabled, by name, in a fixed order (only built for the
# assessment, once hardware_hotplug_enabled holds).
hardware_hotplug_features := [name |
	some feature in [
		["cpuHotAddEnabled", "CPU hot add"],
		["cpuHotRemoveEnabled", "CPU hot remove"],
		["memoryHotAddEnabled", "memory hot add"],
	]
	hardware_input[feature[0]] == true
	name := feature[1]
]

concerns contains flag if {
	hardware_hotplug_enabled
	flag := {
		"id": "vmware.cpu_memory.hotplug.enabled",
		"category": "Warning",
		"label": "CPU or memory hot plug enabled",
		"assessment": concat("", [
			"The VM has hot plug enabled (", concat(", ", hardware_hotplug_features), "). Hot plug ",
			"settings are not migrated: the target VM gets the current CPU and memory sizes. KubeVirt ",
			"hot plugs CPU and memory only with maxSockets/maxGuest set and live-migratable storage; ",
			"configure them after migration if the workload relies on resizing without a reboot.",
		]),
	}
}

concerns contains flag if {
	hardware_input.faultToleranceEnabled == true
	flag := {
		"id": "vmware.fault_tolerance.enabled",
		"category": "Information",
		"label": "Fault tolerance enabled",
		"assessment": "vSphere Fault Tolerance keeps a secondary copy of the VM in lock-step. It has no counterpart on the target, and VDDK snapshots of FT VMs are restricted, so a warm migration may fail. Turn off fault tolerance (not just suspend it) before migrating, and plan high availability at the application level on the target.",
	}
}

concerns contains flag if {
	mb := hardware_input.balloonedMemory
	is_number(mb)
	mb > 0
	flag := {
		"id": "mtv-gitops.vmware.memory.ballooned",
		"category": "Information",
		"label": "Memory ballooning active",
		"assessment": concat("", [
			"The balloon driver currently holds ", text_number(mb), " MB of the ",
			"VM's memory, a sign that its ESXi host is overcommitted. The target VM gets the full ",
			"configured memory; make sure the target node has room for it. Nothing needs to change before ",
			"migrating.",
		]),
	}
}
