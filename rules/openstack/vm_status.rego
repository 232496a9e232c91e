package io.konveyor.forklift.openstack

import rego.v1

openstack_vm_status_migratable := {"ACTIVE", "SHUTOFF"}

# What to do about a status, by Nova status.
openstack_vm_status_advice := {
	"ERROR": "Repair the server (reset its state, or rebuild it) and make sure its volumes are intact",
	"PAUSED": "Unpause the server",
	"SUSPENDED": "Resume the server",
	"SHELVED": "Unshelve the server",
	"SHELVED_OFFLOADED": "Unshelve the server",
	"RESCUE": "Unrescue the server",
	"VERIFY_RESIZE": "Confirm or revert the resize",
	"SOFT_DELETED": "Restore the server",
}

openstack_vm_status := upper(input.status) if {
	is_string(input.status)
	input.status != ""
}

concerns contains flag if {
	status := openstack_vm_status
	not status in openstack_vm_status_migratable
	advice := object.get(openstack_vm_status_advice, status, "Wait for the operation in progress to finish")
	flag := {
		"id": "openstack.vm.status.invalid",
		"category": "Critical",
		"label": "VM status prevents migration",
		"assessment": concat("", [
			"The server's status is '",
			input.status,
			"'; only servers that are ACTIVE or SHUTOFF can be migrated. ",
			advice,
			", then validate again.",
		]),
	}
}
