package io.konveyor.forklift.ovirt

import rego.v1

test_ovirt_name_accepts_a_label if {
	ovirt_name_is_dns1123_label("web-01")
	ovirt_name_is_dns1123_label("a")
}

test_ovirt_name_rejects_upper_case_dots_and_edges if {
	not ovirt_name_is_dns1123_label("Web01")
	not ovirt_name_is_dns1123_label("web.example")
	not ovirt_name_is_dns1123_label("-web")
	not ovirt_name_is_dns1123_label("web-")
	not ovirt_name_is_dns1123_label("web_01")
}

test_ovirt_name_rejects_64_characters if {
	ovirt_name_is_dns1123_label("a23456789012345678901234567890123456789012345678901234567890123")
	not ovirt_name_is_dns1123_label("a234567890123456789012345678901234567890123456789012345678901234")
}

test_ovirt_name_on_target if {
	ovirt_name_on_target("My_VM.Prod") == "my-vmprod"
	ovirt_name_on_target("__x__") == "x"
	ovirt_name_on_target("***") == "vm"
	count(ovirt_name_on_target("A234567890123456789012345678901234567890123456789012345678901234567")) == 63
}
