package io.konveyor.forklift.openstack

import rego.v1

test_openstack_name_accepts_a_label if {
	openstack_name_is_dns1123_label("web-01")
	openstack_name_is_dns1123_label("a")
}

test_openstack_name_rejects_upper_case_dots_and_edges if {
	not openstack_name_is_dns1123_label("Web01")
	not openstack_name_is_dns1123_label("web.example")
	not openstack_name_is_dns1123_label("-web")
	not openstack_name_is_dns1123_label("web-")
	not openstack_name_is_dns1123_label("web_01")
}

test_openstack_name_rejects_64_characters if {
	openstack_name_is_dns1123_label("a23456789012345678901234567890123456789012345678901234567890123")
	not openstack_name_is_dns1123_label("a234567890123456789012345678901234567890123456789012345678901234")
}

test_openstack_name_on_target if {
	openstack_name_on_target("My_VM.Prod") == "my-vmprod"
	openstack_name_on_target("__x__") == "x"
	openstack_name_on_target("***") == "vm"
	count(openstack_name_on_target("A234567890123456789012345678901234567890123456789012345678901234567")) == 63
}
