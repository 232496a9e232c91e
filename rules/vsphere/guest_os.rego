package io.konveyor.forklift.vmware

import rego.v1

# Guest operating systems that are end of life and not certified as KubeVirt guests or for
# conversion with virt-v2v. Matched against guestId (vSphere's VirtualMachineGuestOsIdentifier,
# e.g. "rhel6_64Guest", compared lowercased) or, when there is no guestId, guestName (the full
# name shown in vSphere, e.g. "Red Hat Enterprise Linux 6 (64-bit)"). These run for every VM, so
# they use cheap built-ins: one contains() and one prefix match for the identifier, and small
# regexes behind contains() for the name.

# The unsupported identifiers, lowercased, each between '|', so that one contains() tests them
# all (an array of 50 strings would be built again for every VM).
guest_os_unsupported_ids := `
# Red Hat Enterprise Linux 6 and older, and its rebuilds
|rhel2guest|rhel3guest|rhel3_64guest|rhel4guest|rhel4_64guest|
|rhel5guest|rhel5_64guest|rhel6guest|rhel6_64guest|
|centosguest|centos64guest|centos6guest|centos6_64guest|
|oraclelinuxguest|oraclelinux64guest|oraclelinux6guest|oraclelinux6_64guest|
# SUSE Linux Enterprise 11 and older
|slesguest|sles64guest|sles10guest|sles10_64guest|sles11guest|sles11_64guest|
# Windows older than Windows 7 / Server 2008 R2, DOS and OS/2
|win31guest|win95guest|win98guest|winmeguest|winntguest|
|win2000proguest|win2000servguest|win2000advservguest|
|winxphomeguest|winxpproguest|winxppro64guest|
|winnetwebguest|winnetstandardguest|winnetenterpriseguest|winnetdatacenterguest|
|winnetbusinessguest|winnetstandard64guest|winnetenterprise64guest|winnetdatacenter64guest|
|winvistaguest|winvista64guest|winlonghornguest|winlonghorn64guest|
|dosguest|os2guest|
`

# Families whose every release is unsupported, by identifier prefix.
guest_os_unsupported_id_prefixes := [
	"vmwarephoton", "solaris", "freebsd", "darwin", "netware",
	"openserver", "unixware", "ecomstation", "sjds",
]

guest_os_id_unsupported(guest_id) if {
	is_string(guest_id)
	contains(guest_os_unsupported_ids, concat("", ["|", lower(guest_id), "|"]))
}

guest_os_id_unsupported(guest_id) if {
	is_string(guest_id)
	strings.any_prefix_match(lower(guest_id), guest_os_unsupported_id_prefixes)
}

guest_os_name_unsupported(guest_name) if {
	is_string(guest_name)
	guest_os_name_unsupported_lower(lower(guest_name))
}

# Checks on the lowercased guestName. A regex is compiled on every call and its cost grows with
# the pattern, so each family has its own small pattern behind a cheap contains(). A version
# number must end where the pattern ends, so "linux 6" does not match "linux 60", and Windows
# Server 2008 R2 is not matched.
guest_os_name_unsupported_lower(name) if {
	contains(name, "windows")
	regex.match(`windows (3[.]1|95|98|me|millennium|nt|2000|xp|vista)( |$)|windows server 2003|windows server 2008( [(]|$)`, name)
}

guest_os_name_unsupported_lower(name) if {
	contains(name, "linux")
	regex.match(`(red hat enterprise|oracle) linux [2-6]( |/|[.]|$)|suse linux enterprise (9|10|11)( |$)`, name)
}

guest_os_name_unsupported_lower(name) if {
	contains(name, "centos")
	regex.match(`centos [4-6]( |/|[.]|$)`, name)
}

guest_os_name_unsupported_lower(name) if {
	regex.match(`photon|solaris|freebsd|darwin|netware|unixware|openserver|ecomstation|ms-dos|os/2|mac ?os`, name)
}

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
guest_os_input := object.filter(input, ["guestId", "guestName", "guestDisks"])

# guestId lowercased once: guest_os_id_unsupported, inlined (a call costs more than the check).
guest_os_id := lower(guest_os_input.guestId) if is_string(guest_os_input.guestId)

guest_os_unsupported if contains(guest_os_unsupported_ids, concat("", ["|", guest_os_id, "|"]))

guest_os_unsupported if strings.any_prefix_match(guest_os_id, guest_os_unsupported_id_prefixes)

# guestName is read only when there is no guestId: vSphere derives the full name from the
# identifier, so it would say the same thing again at the price of a few regexes.
guest_os_unsupported if {
	not guest_os_has_id
	guest_os_name_unsupported(guest_os_input.guestName)
}

guest_os_has_id if guest_os_id != "" # guest_os_id is guestId lowercased, defined for strings only

# How the guest OS is named in a concern: the full name, else the identifier.
guest_os_display := text_safe(guest_os_input.guestName) if {
	is_string(guest_os_input.guestName)
	guest_os_input.guestName != ""
} else := text_safe(guest_os_input.guestId)

concerns contains flag if {
	guest_os_unsupported
	flag := {
		"id": "vmware.os.unsupported",
		"category": "Warning",
		"label": "Unsupported guest operating system",
		"assessment": concat("", [
			"The guest operating system (", guest_os_display, ") is not certified as a KubeVirt guest and ",
			"may not be converted: virtio drivers may be missing and the guest may not boot on the ",
			"target. Upgrade the guest to a supported release before migrating, or test the migrated VM ",
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
		"id": "vmware.os.btrfs",
		"category": "Warning",
		"label": "Btrfs file system in the guest",
		"assessment": "The guest uses Btrfs, which the guest conversion (virt-v2v) does not support: it may fail to find the root file system or to install virtio drivers, and the migration fails at the conversion step. Move the data to a supported file system (XFS, ext4) before migrating, or check the conversion with a test migration first.",
	}
}
