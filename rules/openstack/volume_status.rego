package io.konveyor.forklift.openstack

import rego.v1

openstack_volume_status_ok := {"in-use", "available"}

openstack_volume_status_name(vol) := vol.name if {
	is_string(vol.name)
	vol.name != ""
} else := vol.id if {
	is_string(vol.id)
} else := "(unnamed)"

openstack_volume_status_offenders contains concat("", [openstack_volume_status_name(vol), " (", vol.status, ")"]) if {
	some vol in input.volumes
	is_string(vol.status)
	vol.status != ""
	status := lower(vol.status)
	not status in openstack_volume_status_ok
}

concerns contains flag if {
	count(openstack_volume_status_offenders) > 0
	flag := {
		"id": "openstack.disk.status.unsupported",
		"category": "Critical",
		"label": "Volume in an unusable state",
		"assessment": concat("", [
			"These volumes of the server are neither in-use nor available: ",
			concat(", ", openstack_volume_status_offenders),
			". They cannot be copied in that state. Wait for the operation in progress to finish, or repair the volumes in Cinder, then validate again.",
		]),
	}
}
