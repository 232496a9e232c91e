package io.konveyor.forklift.openstack

import rego.v1

openstack_volume_shared_name(vol) := vol.name if {
	is_string(vol.name)
	vol.name != ""
} else := vol.id if {
	is_string(vol.id)
} else := "(unnamed)"

openstack_volume_shared_volumes contains openstack_volume_shared_name(vol) if {
	some vol in input.volumes
	vol.multiattach == true
}

openstack_volume_shared_volumes contains openstack_volume_shared_name(vol) if {
	some vol in input.volumes
	is_array(vol.attachments)
	count(vol.attachments) > 1
}

concerns contains flag if {
	count(openstack_volume_shared_volumes) > 0
	flag := {
		"id": "openstack.disk.shared.detected",
		"category": "Warning",
		"label": "Shared (multi-attach) volume",
		"assessment": concat("", [
			"These volumes can be, or are, attached to several servers: ",
			concat(", ", openstack_volume_shared_volumes),
			". The migrated VM gets its own copy, which is no longer shared, and writes made by other servers after the copy are not included. Plan how the servers that share the volume move together, or re-create the shared storage on the target (a ReadWriteMany volume) and attach it after migration.",
		]),
	}
}
