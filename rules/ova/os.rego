package io.konveyor.forklift.ova

import rego.v1

# VMware guest ids (vmw:osType in the OVF) of systems OpenShift Virtualization does not support:
# RHEL, CentOS and Oracle Linux 6 and older, Windows before Windows 10 and Server 2008 R2, and
# non-Linux, non-Windows systems.
ova_os_unsupported_patterns := [
	`^rhel[2-6](_64)?guest$`,
	`^centos(6)?(_64|64)?guest$`,
	`^oraclelinux(6)?(_64|64)?guest$`,
	`^win(31|95|98|me|nt|2000.*|xp.*|net.*|longhorn.*|vista.*)guest$`,
	`^windows[78](_64)?guest$`,
	`^(dos|os2|ecomstation.*|netware.*|solaris.*|darwin.*|freebsd.*|sco.*|unixware.*)guest$`,
]

ova_os_unsupported(os_type) if {
	some pattern in ova_os_unsupported_patterns
	regex.match(pattern, lower(os_type))
}

concerns contains flag if {
	is_string(input.osType)
	ova_os_unsupported(input.osType)
	flag := {
		"id": "mtv-gitops.ova.os.unsupported",
		"category": "Warning",
		"label": "Guest operating system not supported on the target",
		"assessment": concat("", [
			"The OVF describes the guest as '",
			input.osType,
			"', an operating system OpenShift Virtualization does not support. The VM can be migrated, but it may not boot or run correctly, and it will not be supported on the target. Upgrade the guest before exporting it, or test it thoroughly afterwards.",
		]),
	}
}
