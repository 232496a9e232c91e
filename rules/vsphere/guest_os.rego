package io.konveyor.forklift.vmware

import rego.v1

# Operating system support is decided as Forklift decides it (its vmware vm_os.rego): a guest is
# supported when it is one of the guests virt-v2v converts and OpenShift Virtualization
# supports, RHEL 7 to 10, Windows 10 and 11, Windows Server 2016 to 2025. What says which guest
# it is, in order: the configured identifier (guestId, matched against the pattern below), the
# full name VMware Tools reports from inside the guest (guestNameFromVmwareTools), and, when Tools
# reports none, the configured full name (guestName), each compared lowercased. A VM about which
# none of these says anything is not flagged. The list and the order are Forklift's, so a VM is
# flagged here exactly when MTV flags it: ours is not stricter.

# Forklift matches the lowercased identifier with the pattern
#   rhel(7|8|9|10)(_64)?guest | windows(10|11|2016|2019|2022|2025).*guest
# It runs for every VM, so it is written with cheap built-ins instead of a regex (which the
# engine compiles on every call): an exact look-up for the RHEL identifiers, a prefix and suffix
# test for the Windows ones. For vSphere's identifiers the answer is the regex's.
guest_os_supported_rhel_ids := "|rhel7guest|rhel7_64guest|rhel8guest|rhel8_64guest|rhel9guest|rhel9_64guest|rhel10guest|rhel10_64guest|"

guest_os_supported_windows_prefixes := ["windows10", "windows11", "windows2016", "windows2019", "windows2022", "windows2025"]

guest_os_supported_names := [
	"red hat enterprise linux 7", "red hat enterprise linux 8", "red hat enterprise linux 9",
	"red hat enterprise linux 10", "windows 10", "windows 11", "windows server 2016",
	"windows server 2019", "windows server 2022", "windows server 2025",
]

# A configured identifier (vSphere's VirtualMachineGuestOsIdentifier) of a supported guest.
guest_os_id_supported(guest_id) if {
	is_string(guest_id)
	contains(guest_os_supported_rhel_ids, concat("", ["|", lower(guest_id), "|"]))
}

guest_os_id_supported(guest_id) if {
	is_string(guest_id)
	lowered := lower(guest_id)
	strings.any_prefix_match(lowered, guest_os_supported_windows_prefixes)
	endswith(lowered, "guest")
}

# A full name ("Red Hat Enterprise Linux 9 (64-bit)") of a supported guest.
guest_os_name_supported(name) if {
	is_string(name)
	lowered := lower(name)
	count([1 | some supported in guest_os_supported_names; contains(lowered, supported)]) > 0
}

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
guest_os_input := object.filter(input, ["guestId", "guestName", "guestNameFromVmwareTools", "guestDisks"])

# The name that says which guest it is: VMware Tools' when it reports one, else the configured.
guest_os_tools_name := guest_os_input.guestNameFromVmwareTools if {
	is_string(guest_os_input.guestNameFromVmwareTools)
	guest_os_input.guestNameFromVmwareTools != ""
}

guest_os_name := name if {
	name := guest_os_tools_name
} else := guest_os_input.guestName if {
	is_string(guest_os_input.guestName)
}

# Something says which guest it is (an identifier, even "", or a name).
guest_os_known if is_string(guest_os_input.guestId)

guest_os_known if is_string(guest_os_name)

# The identifier decides first; the name is read only when the identifier is not in the list.
guest_os_id_ok if guest_os_id_supported(guest_os_input.guestId)

guest_os_supported if guest_os_id_ok

guest_os_supported if {
	not guest_os_id_ok
	guest_os_name_supported(guest_os_name)
}

guest_os_unsupported if {
	guest_os_known
	not guest_os_supported
}

# How the guest OS is named in a concern: the full name, else the identifier.
guest_os_display := text_safe(guest_os_name) if {
	is_string(guest_os_name)
	guest_os_name != ""
} else := text_safe(guest_os_input.guestId)

concerns contains flag if {
	guest_os_unsupported
	flag := {
		"id": "vmware.os.unsupported",
		"category": "Warning",
		"label": "Unsupported guest operating system",
		"assessment": concat("", [
			"The guest operating system (", guest_os_display, ") is not one that the guest conversion ",
			"(virt-v2v) and OpenShift Virtualization support (RHEL 7 to 10, Windows 10 and 11, Windows ",
			"Server 2016 to 2025): virtio drivers may be missing and the guest may not boot on the target. ",
			"Upgrade the guest to a supported release before migrating, or test the migrated VM ",
			"thoroughly and accept that it is unsupported.",
		]),
	}
}

# guestDisks: the file systems the guest reports through VMware Tools.
# A comprehension: walking the disks in a rule body costs more.
guest_os_btrfs if count([1 | some d in guest_os_input.guestDisks; guest_os_btrfs_names[d.fileSystemType]]) > 0

guest_os_btrfs_names := {"btrfs", "Btrfs", "BTRFS"}

concerns contains flag if {
	guest_os_btrfs
	flag := {
		"id": "vmware.guestDisks.btrfs.unsupported",
		"category": "Warning",
		"label": "Btrfs file system in the guest",
		"assessment": "The guest uses Btrfs, which the guest conversion (virt-v2v) does not support: it may fail to find the root file system or to install virtio drivers, and the migration fails at the conversion step. Move the data to a supported file system (XFS, ext4) before migrating, or check the conversion with a test migration first.",
	}
}
