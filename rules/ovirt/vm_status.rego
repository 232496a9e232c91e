package io.konveyor.forklift.ovirt

import rego.v1

ovirt_vm_status_migratable := {"up", "down"}

# A hibernated VM: its memory is saved in a storage volume that is not migrated.
ovirt_vm_status_hibernated := {"suspended", "saving_state", "restoring_state"}

ovirt_vm_status := lower(input.status) if {
	is_string(input.status)
	input.status != ""
}

concerns contains flag if {
	ovirt_vm_status in ovirt_vm_status_hibernated
	flag := {
		"id": "mtv-gitops.ovirt.vm.status.hibernated",
		"category": "Critical",
		"label": "VM is suspended (hibernated)",
		"assessment": concat("", [
			"The VM's status is '",
			input.status,
			"': its memory state is saved on storage and would be lost, and the VM cannot be powered off for the copy. Resume the VM and shut it down (or leave it running), then validate again.",
		]),
	}
}

concerns contains flag if {
	status := ovirt_vm_status
	not status in ovirt_vm_status_migratable
	not status in ovirt_vm_status_hibernated
	flag := {
		"id": "ovirt.vm.status_invalid",
		"category": "Critical",
		"label": "VM status prevents migration",
		"assessment": concat("", [
			"The VM's status is '",
			input.status,
			"'; only VMs that are up or down can be migrated. Wait for the operation in progress to finish, or bring the VM up or down in oVirt, then validate again.",
		]),
	}
}
