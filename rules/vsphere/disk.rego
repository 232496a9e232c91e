package io.konveyor.forklift.vmware

import rego.v1

# How a disk is named in a concern: its file, else its device key, else a placeholder.
disk_name(disk) := text_safe(disk.file) if {
	is_string(disk.file)
	disk.file != ""
} else := concat(" ", ["disk key", text_number(disk.key)]) if {
	is_number(disk.key)
} else := "(unnamed disk)"

# The names of the disks matching a predicate, joined for an assessment.
disk_names(disks) := concat(", ", [disk_name(d) | some d in disks])

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
disk_input := object.filter(input, ["disks"])

disk_list := disk_input.disks

# A disk that fails at least one of the checks below. Every check first narrows the disks to
# these, so that a VM whose disks are all fine is walked once, not once per check.
disk_suspect(d) if d.shared == true

disk_suspect(d) if d.rdm == true

disk_suspect(d) if startswith(d.mode, "independent")

disk_suspect(d) if d.bus == "nvme"

disk_suspect(d) if disk_capacity_invalid(d.capacity)

disk_suspect(d) if disk_capacity_unaligned(d.capacity)

disk_suspect(d) if d.datastore.id == ""

disk_suspect(d) if d.changeTrackingEnabled == false

disk_suspects := [d | some d in disk_list; disk_suspect(d)]

disk_independent_modes := ["independent_persistent", "independent_nonpersistent"]

# Capacity in bytes that cannot back a volume: zero or less.
disk_capacity_invalid(capacity) if {
	is_number(capacity)
	capacity <= 0
}

# Capacity in bytes that is not a whole number of 512-byte sectors.
disk_capacity_unaligned(capacity) if {
	is_number(capacity)
	capacity > 0
	not disk_capacity_whole_sectors(capacity)
}

# Division, not '%': in regopy 1.5.2 a remainder of a large integer can read "00" and equal
# nothing (10737418240 % 512 != 0).
disk_capacity_whole_sectors(capacity) if {
	sectors := capacity / 512
	floor(sectors) == sectors
}

disk_shared_disks := [d | some d in disk_suspects; d.shared == true]

concerns contains flag if {
	count(disk_shared_disks) > 0
	flag := {
		"id": "vmware.disk.shared",
		"category": "Warning",
		"label": "Shared (multi-writer) disk detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_shared_disks), " are shared with other VMs. A shared disk is copied ",
			"with this VM only, so migrate it once and attach it to the other migrated VMs afterwards; ",
			"every VM that writes to it must be powered off while it is copied. vSphere cannot snapshot ",
			"multi-writer disks, so use a cold migration. On the target, map the disk to a storage class ",
			"that offers ReadWriteMany block volumes, or the VMs cannot share it.",
		]),
	}
}

disk_rdm_disks := [d | some d in disk_suspects; d.rdm == true]

concerns contains flag if {
	count(disk_rdm_disks) > 0
	flag := {
		"id": "vmware.disk.rdm",
		"category": "Critical",
		"label": "Raw device mapping (RDM) disk detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_rdm_disks), " are raw device mappings to a SAN LUN, not virtual ",
			"disks; they cannot be read through a snapshot and are not migrated. Convert them to virtual ",
			"disks first (for example a Storage vMotion to a VMFS or NFS datastore with a thin or thick ",
			"format), or detach them in vSphere, migrate the VM, and present the LUN to the target ",
			"cluster yourself.",
		]),
	}
}

disk_independent_disks := [d | some d in disk_suspects; d.mode in disk_independent_modes]

concerns contains flag if {
	count(disk_independent_disks) > 0
	flag := {
		"id": "vmware.disk.mode.independent",
		"category": "Warning",
		"label": "Independent disk mode detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_independent_disks), " are in independent mode. Independent disks ",
			"are left out of snapshots, so a warm migration cannot track their changes and a running VM's ",
			"independent disk is copied in an inconsistent state; recent VDDK releases may refuse to open ",
			"them at all, and a nonpersistent disk loses its changes at power-off. Change the disks to ",
			"dependent mode in vSphere (the VM must be powered off), or at least use a cold migration.",
		]),
	}
}

disk_nvme_disks := [d | some d in disk_suspects; d.bus == "nvme"]

concerns contains flag if {
	count(disk_nvme_disks) > 0
	flag := {
		"id": "vmware.disk.nvme",
		"category": "Warning",
		"label": "Disk on an NVMe controller",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_nvme_disks), " are attached to an NVMe controller. KubeVirt has no ",
			"NVMe disk bus, so on the target they are attached as virtio disks and the guest sees new ",
			"device names. Make sure the guest has virtio drivers (virtio-win for Windows) and that fstab ",
			"and the boot loader refer to file systems by UUID or label, not by /dev/nvme* paths.",
		]),
	}
}

disk_invalid_capacity_disks := [d | some d in disk_suspects; disk_capacity_invalid(d.capacity)]

concerns contains flag if {
	count(disk_invalid_capacity_disks) > 0
	flag := {
		"id": "vmware.disk.capacity.invalid",
		"category": "Critical",
		"label": "Disk with zero or negative capacity",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_invalid_capacity_disks), " report a capacity of zero bytes or less, ",
			"so no target volume can be sized for them. The disk descriptor is usually damaged or the ",
			"disk is inaccessible; repair or remove the disk in vSphere and refresh the inventory.",
		]),
	}
}

disk_unaligned_capacity_disks := [d | some d in disk_suspects; disk_capacity_unaligned(d.capacity)]

concerns contains flag if {
	count(disk_unaligned_capacity_disks) > 0
	flag := {
		"id": "vmware.disk.capacity.unaligned",
		"category": "Warning",
		"label": "Disk capacity is not a multiple of 512 bytes",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_unaligned_capacity_disks), " have a capacity that is not a whole ",
			"number of 512-byte sectors. The target volume is rounded up, so the guest sees a slightly ",
			"larger disk, and some storage refuses such sizes. An odd size usually comes from a ",
			"hand-edited or damaged descriptor: check the disk in vSphere, or grow it to a multiple of 1 ",
			"MiB.",
		]),
	}
}

disk_without_datastore := [d | some d in disk_suspects; d.datastore.id == ""]

concerns contains flag if {
	count(disk_without_datastore) > 0
	flag := {
		"id": "vmware.disk.datastore.missing",
		"category": "Critical",
		"label": "Disk is not located on a datastore",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disk_without_datastore), " are not on any datastore known to the ",
			"inventory, so there is no storage mapping for them and they cannot be copied. Move them to a ",
			"datastore (or remove them) in vSphere and refresh the inventory.",
		]),
	}
}

concerns contains flag if {
	is_array(disk_input.disks)
	count(disk_input.disks) == 0
	flag := {
		"id": "vmware.disk.none",
		"category": "Warning",
		"label": "VM has no disks",
		"assessment": concat("", [
			"The VM has no virtual disks, so only its configuration is migrated and the target VM has ",
			"nothing to boot from unless it boots from the network. Check that this is the VM you meant ",
			"to migrate.",
		]),
	}
}
