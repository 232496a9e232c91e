package io.konveyor.forklift.openstack

import rego.v1

test_openstack_os_old_guests_are_unsupported if {
	openstack_os_unsupported("rhel", "6.10")
	openstack_os_unsupported("centos", "5")
	openstack_os_unsupported("windows", "2003r2")
	openstack_os_unsupported("windows", "7")
	openstack_os_unsupported("freebsd", "13.2")
}

test_openstack_os_current_guests_are_supported if {
	not openstack_os_unsupported("rhel", "9.4")
	not openstack_os_unsupported("centos", "7")
	not openstack_os_unsupported("rhel", "10")
	not openstack_os_unsupported("windows", "2008r2")
	not openstack_os_unsupported("windows", "2019")
	not openstack_os_unsupported("windows", "11")
	not openstack_os_unsupported("ubuntu", "6.06")
}

test_openstack_os_architectures if {
	openstack_os_arch_unsupported("aarch64")
	openstack_os_arch_unsupported("ppc64le")
	not openstack_os_arch_unsupported("x86_64")
}
