package io.konveyor.forklift.ovirt

import rego.v1

test_ovirt_os_old_guests_are_unsupported if {
	ovirt_os_unsupported("rhel_6x64")
	ovirt_os_unsupported("rhel_5")
	ovirt_os_unsupported("windows_2003x64")
	ovirt_os_unsupported("windows_7x64")
	ovirt_os_unsupported("freebsdx64")
}

test_ovirt_os_other_architectures_are_unsupported if {
	ovirt_os_unsupported("rhel_8_ppc64")
	ovirt_os_unsupported("rhel_7_s390x")
}

test_ovirt_os_current_guests_are_supported if {
	not ovirt_os_unsupported("rhel_9x64")
	not ovirt_os_unsupported("rhel_7x64")
	not ovirt_os_unsupported("windows_2008r2x64")
	not ovirt_os_unsupported("windows_2019x64")
	not ovirt_os_unsupported("windows_10x64")
	not ovirt_os_unsupported("other_linux")
}
