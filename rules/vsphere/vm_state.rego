package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
vm_state_input := object.filter(
	input,
	["powerState", "connectionState", "isTemplate", "toolsStatus"],
)

concerns contains flag if {
	vm_state_input.powerState == "suspended"
	flag := {
		"id": "mtv-gitops.vmware.power_state.suspended",
		"category": "Critical",
		"label": "VM is suspended",
		"assessment": "The VM is suspended (hibernated by vSphere). Its memory state cannot be migrated, and powering it off for the copy would throw that state away, as if the power had been cut. Resume the VM and shut the guest down cleanly (or leave it running for a warm migration) before migrating.",
	}
}

concerns contains flag if {
	state := vm_state_input.connectionState
	is_string(state)
	state != ""
	state != "connected"
	flag := {
		"id": "mtv-gitops.vmware.connection_state.not_connected",
		"category": "Critical",
		"label": "VM is not connected",
		"assessment": concat("", [
			"vCenter reports the VM as '", text_safe(state), "' (disconnected, ",
			"orphaned, inaccessible or invalid), so it cannot be snapshotted, powered off or read. Fix ",
			"the VM in vCenter (reconnect its host, bring its datastore back, or re-register the .vmx) ",
			"and refresh the inventory.",
		]),
	}
}

concerns contains flag if {
	vm_state_input.isTemplate == true
	flag := {
		"id": "mtv-gitops.vmware.template",
		"category": "Critical",
		"label": "VM is a template",
		"assessment": "This is a vSphere template, which cannot be powered on or snapshotted the way the migration needs. Convert it to a virtual machine in vSphere (or deploy a VM from it) and migrate that VM instead.",
	}
}

concerns contains flag if {
	vm_state_input.toolsStatus == "toolsNotInstalled"
	flag := {
		"id": "mtv-gitops.vmware.tools.not_installed",
		"category": "Warning",
		"label": "VMware Tools not installed",
		"assessment": "VMware Tools is not installed in the guest. vSphere cannot shut the guest down cleanly, so the migration has to power it off hard, and the inventory lacks the guest's IP addresses and host name. Install VMware Tools (or open-vm-tools) before migrating.",
	}
}
