package io.konveyor.forklift.openstack

import rego.v1

openstack_volume_limits_name(vol) := vol.name if {
	is_string(vol.name)
	vol.name != ""
} else := object.get(vol, "id", "(unnamed)")

# A volume of no size (GB) cannot be copied to a target volume.
openstack_volume_limits_empty contains openstack_volume_limits_name(vol) if {
	some vol in input.volumes
	is_number(vol.size)
	vol.size <= 0
}

concerns contains flag if {
	count(openstack_volume_limits_empty) > 0
	flag := {
		"id": "openstack.disk.capacity.invalid",
		"category": "Critical",
		"label": "Volume with no size",
		"assessment": concat("", [
			"Cinder gives these volumes a size of zero or less: ",
			concat(", ", sort(openstack_volume_limits_empty)),
			". No target volume can be created for them, so the migration would fail. Check the volumes in Cinder, then validate again.",
		]),
	}
}

# OpenShift Virtualization attaches at most this many disks to a VM.
openstack_volume_limits_max := 165

concerns contains flag if {
	count(input.volumes) > openstack_volume_limits_max
	flag := {
		"id": "openstack.disk.count.exceeds.limit",
		"category": "Warning",
		"label": "More disks than a target VM can have",
		"assessment": concat("", [
			"The server has ", sprintf("%v", [count(input.volumes)]), " volumes; a VM on OpenShift ",
			"Virtualization can have at most ", sprintf("%v", [openstack_volume_limits_max]),
			". Detach or merge volumes before migrating, or the migrated VM will not start.",
		]),
	}
}
