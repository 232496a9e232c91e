package io.konveyor.forklift.vmware

import rego.v1

test_name_plain_label_is_valid if {
	name_is_dns1123_label("web-01")
}

test_name_single_character_is_valid if {
	name_is_dns1123_label("a")
	name_is_dns1123_label("7")
}

test_name_63_characters_is_valid if {
	name_is_dns1123_label("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	not name_too_long("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
}

test_name_uppercase_is_invalid if {
	not name_has_dns1123_shape("Web-01")
}

test_name_underscore_is_invalid if {
	not name_has_dns1123_shape("web_01")
}

test_name_dot_is_invalid if {
	not name_has_dns1123_shape("web.example")
}

test_name_space_is_invalid if {
	not name_has_dns1123_shape("web 01")
}

test_name_leading_or_trailing_dash_is_invalid if {
	not name_has_dns1123_shape("-web")
	not name_has_dns1123_shape("web-")
}

test_name_empty_is_invalid if {
	not name_has_dns1123_shape("")
}

test_name_non_string_is_invalid if {
	not name_is_dns1123_label(42)
	not name_too_long(42)
}

test_name_64_characters_is_too_long if {
	name_too_long("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	name_has_dns1123_shape("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	not name_is_dns1123_label("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
}
