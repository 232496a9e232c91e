package io.konveyor.forklift.openstack

import rego.v1

# The guest is described by the properties of the image the VM was built from (os_distro and
# os_version, as Glance defines them, and architecture).

openstack_os_el_distros := {"rhel", "centos", "ol", "oraclelinux", "scientific"}

openstack_os_other_systems := {"freebsd", "netbsd", "openbsd", "opensolaris", "solaris", "msdos", "netware"}

openstack_os_x86 := {"x86_64", "i686", "i386", "amd64"}

openstack_os_unsupported(distro, _) if distro in openstack_os_other_systems

# Enterprise Linux 6 and older.
openstack_os_unsupported(distro, version) if {
	distro in openstack_os_el_distros
	regex.match(`^[1-6]([.].*)?$`, version)
}

# Windows before Windows 10 and Server 2008 R2.
openstack_os_unsupported("windows", version) if {
	regex.match(`^(xp|2000|2003(r2)?|2008|vista|7|8([.][01])?)$`, version)
}

openstack_os_arch_unsupported(arch) if not arch in openstack_os_x86

openstack_os_reasons contains concat("", ["operating system '", distro, " ", version, "'"]) if {
	is_string(input.image.properties.os_distro)
	is_string(input.image.properties.os_version)
	distro := lower(input.image.properties.os_distro)
	version := lower(input.image.properties.os_version)
	openstack_os_unsupported(distro, version)
}

# `not is_string(input.image.properties.os_version)` would be undefined, not true, when the
# property is absent (OPA binds a negated call's arguments first): negate a rule instead.
openstack_os_has_version if is_string(input.image.properties.os_version)

openstack_os_reasons contains concat("", ["operating system '", distro, "'"]) if {
	is_string(input.image.properties.os_distro)
	not openstack_os_has_version
	distro := lower(input.image.properties.os_distro)
	distro in openstack_os_other_systems
}

openstack_os_reasons contains concat("", ["architecture '", arch, "'"]) if {
	some key in ["architecture", "hw_architecture"]
	is_string(input.image.properties[key])
	arch := lower(input.image.properties[key])
	arch != ""
	openstack_os_arch_unsupported(arch)
}

concerns contains flag if {
	count(openstack_os_reasons) > 0
	flag := {
		"id": "openstack.os.unsupported",
		"category": "Warning",
		"label": "Guest operating system not supported on the target",
		"assessment": concat("", [
			"The VM's image describes a guest that OpenShift Virtualization does not support: ",
			concat(", ", openstack_os_reasons),
			". The VM can be migrated, but it may not boot or run correctly, and it will not be supported on the target. Upgrade the guest before migrating, or test it thoroughly afterwards.",
		]),
	}
}
