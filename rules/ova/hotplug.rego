package io.konveyor.forklift.ova

import rego.v1

hotplug_cpu if input.cpuHotAddEnabled == true

hotplug_cpu if input.cpuHotRemoveEnabled == true

concerns contains flag if {
	hotplug_cpu
	flag := {
		"id": "ova.cpu_memory.hotplug.enabled",
		"category": "Warning",
		"label": "CPU hot plug enabled",
		"assessment": "The VM allows adding (or removing) CPUs while it runs. The target VM is created without CPU hot plug; configure it (spec.domain.cpu.maxSockets) after migration if you rely on it.",
	}
}

concerns contains flag if {
	input.memoryHotAddEnabled == true
	flag := {
		"id": "ova.cpu_memory.hotplug.enabled",
		"category": "Warning",
		"label": "Memory hot plug enabled",
		"assessment": "The VM allows adding memory while it runs. The target VM is created without memory hot plug; configure it (spec.domain.memory.maxGuest) after migration if you rely on it.",
	}
}
