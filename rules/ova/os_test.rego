package io.konveyor.forklift.ova

import rego.v1

test_ova_os_old_guests_are_unsupported if {
	ova_os_unsupported("rhel6_64Guest")
	ova_os_unsupported("centos64Guest")
	ova_os_unsupported("winXPProGuest")
	ova_os_unsupported("winNetEnterprise64Guest")
	ova_os_unsupported("windows7_64Guest")
	ova_os_unsupported("freebsd12_64Guest")
	ova_os_unsupported("darwin19_64Guest")
}

test_ova_os_current_guests_are_supported if {
	not ova_os_unsupported("rhel9_64Guest")
	not ova_os_unsupported("rhel7_64Guest")
	not ova_os_unsupported("centos7_64Guest")
	not ova_os_unsupported("windows9_64Guest")
	not ova_os_unsupported("windows2019srv_64Guest")
	not ova_os_unsupported("windows7Server64Guest")
	not ova_os_unsupported("ubuntu64Guest")
	not ova_os_unsupported("")
}
