package io.konveyor.forklift.vmware

import rego.v1

test_host_versions_before_6_5_unsupported if {
	host_version_unsupported("6.0.0")
	host_version_unsupported("5.5.0")
	host_version_unsupported("5.1")
	host_version_unsupported("4.1.0")
}

test_host_versions_from_6_5_supported if {
	not host_version_unsupported("6.5.0")
	not host_version_unsupported("6.7.0")
	not host_version_unsupported("7.0.3")
	not host_version_unsupported("8.0.2")
}

test_host_version_garbage_ignored if {
	not host_version_unsupported("")
	not host_version_unsupported("ESXi")
	not host_version_unsupported(6.0)
	not host_version_unsupported(null)
}
