package io.konveyor.forklift.ovirt

import rego.v1

# oVirt OS type ids of guests that OpenShift Virtualization does not support: RHEL 6 and older,
# Windows XP to 8 and Server 2003/2008 (not 2008 R2), SLES 11, FreeBSD, and any guest built for
# a non-x86 architecture (ppc64, s390x).
ovirt_os_unsupported(os_type) if {
	regex.match(`^(rhel_[3-6](x64)?|windows_(xp|2003(x64)?|2008(x64)?|7(x64)?|8(x64)?)|sles_11.*|freebsd.*)$`, os_type)
}

ovirt_os_unsupported(os_type) if {
	regex.match(`(ppc64|s390x)`, os_type)
}

concerns contains flag if {
	is_string(input.osType)
	ovirt_os_unsupported(lower(input.osType))
	flag := {
		"id": "ovirt.os.unsupported",
		"category": "Warning",
		"label": "Guest operating system not supported on the target",
		"assessment": concat("", [
			"The VM's operating system type is '",
			input.osType,
			"', which OpenShift Virtualization does not support. The VM can be migrated, but it may not boot or run correctly, and it will not be supported on the target. Upgrade the guest before migrating, or test it thoroughly afterwards.",
		]),
	}
}
