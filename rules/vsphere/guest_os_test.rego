package io.konveyor.forklift.vmware

import rego.v1

test_guest_os_supported_ids if {
	guest_os_id_supported("rhel7_64Guest")
	guest_os_id_supported("rhel8_64Guest")
	guest_os_id_supported("rhel9_64Guest")
	guest_os_id_supported("rhel10_64Guest")
	guest_os_id_supported("windows11_64Guest")
	guest_os_id_supported("windows2019srv_64Guest")
	guest_os_id_supported("windows2019srvNext_64Guest")
	guest_os_id_supported("windows2022srvNext_64Guest")
}

test_guest_os_ids_not_in_the_list if {
	not guest_os_id_supported("rhel6_64Guest")
	not guest_os_id_supported("centos7_64Guest")
	not guest_os_id_supported("vmwarePhoton64Guest")
	not guest_os_id_supported("winNetStandardGuest")
	not guest_os_id_supported("windows7Server64Guest")
	not guest_os_id_supported("ubuntu64Guest")
	not guest_os_id_supported("otherLinux64Guest")
}

test_guest_os_supported_names if {
	guest_os_name_supported("Red Hat Enterprise Linux 7 (64-bit)")
	guest_os_name_supported("Red Hat Enterprise Linux 9.4 (Plow)")
	guest_os_name_supported("Microsoft Windows 10 (64-bit)")
	guest_os_name_supported("Microsoft Windows Server 2019 Datacenter")
	guest_os_name_supported("Microsoft Windows Server 2025 (64-bit)")
}

test_guest_os_names_not_in_the_list if {
	not guest_os_name_supported("Red Hat Enterprise Linux 6 (64-bit)")
	not guest_os_name_supported("CentOS 7 (64-bit)")
	not guest_os_name_supported("Microsoft Windows Server 2008 R2 (64-bit)")
	not guest_os_name_supported("Ubuntu Linux (64-bit)")
	not guest_os_name_supported("VMware Photon OS (64-bit)")
}

test_guest_os_non_string_ignored if {
	not guest_os_id_supported(null)
	not guest_os_name_supported(7)
}
