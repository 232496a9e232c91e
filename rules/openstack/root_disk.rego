package io.konveyor.forklift.openstack

import rego.v1

# A server booted from an image has its root disk on the compute host (imageID is set); a server
# booted from a volume has imageID "" and its root disk is a Cinder volume.
concerns contains flag if {
	is_string(input.imageID)
	input.imageID != ""
	flag := {
		"id": "mtv-gitops.openstack.vm.image_based",
		"category": "Critical",
		"label": "Root disk is not a Cinder volume",
		"assessment": "The server was booted from an image: its root disk is an ephemeral disk on the compute host, not a Cinder volume. Only servers whose disks are Cinder volumes can be migrated. Create a volume from a snapshot of the server and boot a new server from it (or rebuild the server to boot from a volume), then migrate that server.",
	}
}

openstack_root_disk_ephemeral_gb contains size if {
	some key in ["ephemeral", "OS-FLV-EXT-DATA:ephemeral"]
	size := input.flavor[key]
	is_number(size)
	size > 0
}

concerns contains flag if {
	count(openstack_root_disk_ephemeral_gb) > 0
	flag := {
		"id": "mtv-gitops.openstack.disk.ephemeral",
		"category": "Warning",
		"label": "Flavor has an ephemeral disk",
		"assessment": "The server's flavor gives it an extra ephemeral disk on the compute host. Ephemeral disks are not Cinder volumes and are not migrated; copy any data the guest keeps there to a volume before migrating, and remove the disk from the guest's mount table.",
	}
}
