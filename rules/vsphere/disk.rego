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

# How many disks pass every check of this file at a glance. Each field read costs a few
# microseconds per disk, so the common case (all disks fine) is one walk over the disks with
# one condition per check, and the checks below run only when a disk fails it. A field that is
# absent or of an unexpected type fails the glance too, and the checks below decide. The
# capacity test here is bits.and: it is cheaper than a division, and it is undefined (so the
# disk is looked at closely) for non-integers and for integers beyond 64 bits.
disk_clean_count := count([1 |
	some d in disk_list
	d.shared == false
	d.rdm == false
	d.mode == "persistent"
	d.bus != "nvme"
	c := d.capacity
	c > 0
	bits.and(c, 511) == 0
	d.datastore.id != ""
])

# At least one disk needs a closer look.
disk_suspicious if disk_clean_count != count(disk_list)

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

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; d.shared == true]
	count(disks) > 0
	flag := {
		"id": "vmware.disk.shared.detected",
		"category": "Warning",
		"label": "Shared (multi-writer) disk detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " are shared with other VMs. A shared disk is copied ",
			"with this VM only, so migrate it once and attach it to the other migrated VMs afterwards; ",
			"every VM that writes to it must be powered off while it is copied. vSphere cannot snapshot ",
			"multi-writer disks, so use a cold migration. On the target, map the disk to a storage class ",
			"that offers ReadWriteMany block volumes, or the VMs cannot share it.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; d.rdm == true]
	count(disks) > 0
	flag := {
		"id": "vmware.disk.rdm.detected",
		"category": "Critical",
		"label": "Raw device mapping (RDM) disk detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " are raw device mappings to a SAN LUN, not virtual ",
			"disks; they cannot be read through a snapshot and are not migrated. Convert them to virtual ",
			"disks first (for example a Storage vMotion to a VMFS or NFS datastore with a thin or thick ",
			"format), or detach them in vSphere, migrate the VM, and present the LUN to the target ",
			"cluster yourself.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; d.mode in disk_independent_modes]
	count(disks) > 0
	flag := {
		"id": "vmware.disk_mode.independent",
		"category": "Critical",
		"label": "Independent disk mode detected",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " are in independent mode. Independent disks ",
			"are left out of snapshots, so a warm migration cannot track their changes and a running VM's ",
			"independent disk is copied in an inconsistent state; recent VDDK releases may refuse to open ",
			"them at all, and a nonpersistent disk loses its changes at power-off. Change the disks to ",
			"dependent mode in vSphere (the VM must be powered off), or at least use a cold migration.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; d.bus == "nvme"]
	count(disks) > 0
	flag := {
		"id": "vmware.disk.nvme.detected",
		"category": "Critical",
		"label": "Disk on an NVMe controller",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " are attached to an NVMe controller. KubeVirt has no ",
			"NVMe disk bus, so on the target they are attached as virtio disks and the guest sees new ",
			"device names. Make sure the guest has virtio drivers (virtio-win for Windows) and that fstab ",
			"and the boot loader refer to file systems by UUID or label, not by /dev/nvme* paths.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; disk_capacity_invalid(d.capacity)]
	count(disks) > 0
	flag := {
		"id": "vmware.disk.capacity.invalid",
		"category": "Critical",
		"label": "Disk with zero or negative capacity",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " report a capacity of zero bytes or less, ",
			"so no target volume can be sized for them. The disk descriptor is usually damaged or the ",
			"disk is inaccessible; repair or remove the disk in vSphere and refresh the inventory.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; disk_capacity_unaligned(d.capacity)]
	count(disks) > 0
	flag := {
		"id": "mtv-gitops.vmware.disk.capacity.unaligned",
		"category": "Warning",
		"label": "Disk capacity is not a multiple of 512 bytes",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " have a capacity that is not a whole ",
			"number of 512-byte sectors. The target volume is rounded up, so the guest sees a slightly ",
			"larger disk, and some storage refuses such sizes. An odd size usually comes from a ",
			"hand-edited or damaged descriptor: check the disk in vSphere, or grow it to a multiple of 1 ",
			"MiB.",
		]),
	}
}

concerns contains flag if {
	disk_suspicious
	disks := [d | some d in disk_list; d.datastore.id == ""]
	count(disks) > 0
	flag := {
		"id": "vmware.datastore.missing",
		"category": "Critical",
		"label": "Disk is not located on a datastore",
		"assessment": concat("", [
			"Disk(s) ", disk_names(disks), " are not on any datastore known to the ",
			"inventory, so there is no storage mapping for them and they cannot be copied. Move them to a ",
			"datastore (or remove them) in vSphere and refresh the inventory.",
		]),
	}
}

concerns contains flag if {
	is_array(disk_list)
	count(disk_list) == 0
	flag := {
		"id": "mtv-gitops.vmware.disk.none",
		"category": "Warning",
		"label": "VM has no disks",
		"assessment": "The VM has no virtual disks, so only its configuration is migrated and the target VM has nothing to boot from unless it boots from the network. Check that this is the VM you meant to migrate.",
	}
}

# OpenShift Virtualization attaches at most this many disks to a VM.
disk_count_limit := 165

concerns contains flag if {
	count(disk_list) > disk_count_limit
	flag := {
		"id": "vmware.disk.count.exceeds.limit",
		"category": "Warning",
		"label": "More disks than a target VM can have",
		"assessment": concat("", [
			"The VM has ", text_number(count(disk_list)), " disks; a VM on OpenShift Virtualization can have ",
			"at most ", text_number(disk_count_limit), ". Merge or remove disks before migrating, or the ",
			"migrated VM will not start.",
		]),
	}
}

# disk.EnableUUID makes vSphere give SCSI disks a serial number the guest can see; on the target,
# disk serial numbers are shorter, so the guest sees them cut.
concerns contains flag if {
	input.diskEnableUuid == true
	count([1 | some d in disk_list; d.bus == "scsi"]) > 0
	flag := {
		"id": "vmware.disk_serial.truncated",
		"category": "Information",
		"label": "Disk serial numbers will be shortened",
		"assessment": "The VM has disk.EnableUUID set, so the guest sees serial numbers on its SCSI disks. On the target these serial numbers are truncated. If the guest identifies disks by serial number (udev rules, multipath, cluster software), update that configuration after migration.",
	}
}
