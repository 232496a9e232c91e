package io.konveyor.forklift.vmware

import rego.v1

test_guest_os_old_rhel_ids_unsupported if {
	guest_os_id_unsupported("rhel6_64Guest")
	guest_os_id_unsupported("rhel5Guest")
	guest_os_id_unsupported("centos64Guest")
	guest_os_id_unsupported("centos6_64Guest")
}

test_guest_os_current_rhel_ids_supported if {
	not guest_os_id_unsupported("rhel7_64Guest")
	not guest_os_id_unsupported("rhel8_64Guest")
	not guest_os_id_unsupported("rhel9_64Guest")
	not guest_os_id_unsupported("centos7_64Guest")
	not guest_os_id_unsupported("centos8_64Guest")
}

test_guest_os_photon_id_unsupported if {
	guest_os_id_unsupported("vmwarePhoton64Guest")
}

test_guest_os_old_windows_ids_unsupported if {
	guest_os_id_unsupported("winXPProGuest")
	guest_os_id_unsupported("winNetStandardGuest")
	guest_os_id_unsupported("winNetEnterprise64Guest")
	guest_os_id_unsupported("win2000ServGuest")
	guest_os_id_unsupported("winLonghorn64Guest")
}

test_guest_os_current_windows_ids_supported if {
	not guest_os_id_unsupported("windows7Server64Guest")
	not guest_os_id_unsupported("windows9Server64Guest")
	not guest_os_id_unsupported("windows2019srv_64Guest")
	not guest_os_id_unsupported("windows9_64Guest")
}

test_guest_os_other_unix_ids_unsupported if {
	guest_os_id_unsupported("solaris11_64Guest")
	guest_os_id_unsupported("freebsd12_64Guest")
	guest_os_id_unsupported("darwin19_64Guest")
}

test_guest_os_names_unsupported if {
	guest_os_name_unsupported("Red Hat Enterprise Linux 6 (64-bit)")
	guest_os_name_unsupported("CentOS 4/5/6 (64-bit)")
	guest_os_name_unsupported("Microsoft Windows XP Professional (32-bit)")
	guest_os_name_unsupported("Microsoft Windows Server 2003 Standard (32-bit)")
	guest_os_name_unsupported("Microsoft Windows Server 2008 (64-bit)")
	guest_os_name_unsupported("VMware Photon OS (64-bit)")
	guest_os_name_unsupported("Oracle Solaris 10 (64-bit)")
	guest_os_name_unsupported("FreeBSD 12 (64-bit)")
	guest_os_name_unsupported("SUSE Linux Enterprise 11 (64-bit)")
}

test_guest_os_names_supported if {
	not guest_os_name_unsupported("Red Hat Enterprise Linux 7 (64-bit)")
	not guest_os_name_unsupported("Red Hat Enterprise Linux 9 (64-bit)")
	not guest_os_name_unsupported("CentOS 7 (64-bit)")
	not guest_os_name_unsupported("Microsoft Windows Server 2008 R2 (64-bit)")
	not guest_os_name_unsupported("Microsoft Windows Server 2019 (64-bit)")
	not guest_os_name_unsupported("Microsoft Windows 10 (64-bit)")
	not guest_os_name_unsupported("SUSE Linux Enterprise 15 (64-bit)")
	not guest_os_name_unsupported("Ubuntu Linux (64-bit)")
}

test_guest_os_non_string_ignored if {
	not guest_os_id_unsupported(null)
	not guest_os_name_unsupported(7)
}
