package io.konveyor.forklift.ova

import rego.v1

test_ova_name_accepts_a_label if {
	ova_name_is_dns1123_label("web-01")
	ova_name_is_dns1123_label("a")
}

test_ova_name_rejects_upper_case_dots_and_edges if {
	not ova_name_is_dns1123_label("Web01")
	not ova_name_is_dns1123_label("web.example")
	not ova_name_is_dns1123_label("-web")
	not ova_name_is_dns1123_label("web-")
	not ova_name_is_dns1123_label("web_01")
}

test_ova_name_rejects_64_characters if {
	ova_name_is_dns1123_label("a23456789012345678901234567890123456789012345678901234567890123")
	not ova_name_is_dns1123_label("a234567890123456789012345678901234567890123456789012345678901234")
}

test_ova_name_on_target if {
	ova_name_on_target("My_VM.Prod") == "my-vmprod"
	ova_name_on_target("__x__") == "x"
	ova_name_on_target("***") == "vm"
	count(ova_name_on_target("A234567890123456789012345678901234567890123456789012345678901234567")) == 63
}
