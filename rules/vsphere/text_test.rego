package io.konveyor.forklift.vmware

import rego.v1

# regopy keeps escapes in string literals of a module (a literal "\"" is two characters to the
# built-ins, an input string is not), so these tests check what holds either way: the result
# contains no '"', '\' or control character, and plain text is unchanged.

test_text_safe_keeps_plain_text if {
	text_safe("[ds1] web-01/web-01.vmdk") == "[ds1] web-01/web-01.vmdk"
	text_safe("Red Hat Enterprise Linux 6 (64-bit)") == "Red Hat Enterprise Linux 6 (64-bit)"
}

test_text_safe_removes_quotes_and_backslashes if {
	r := text_safe("My \"VM\" C:\\vm")
	startswith(r, "My _")
	not regex.match("[\"\\\\]", r)
}

test_text_safe_removes_control_characters if {
	r := text_safe("a\tb")
	startswith(r, "a")
	endswith(r, "b")
	not regex.match("[[:cntrl:]]", r)
}

test_text_safe_numbers_and_others if {
	text_safe(10737418240) == "10737418240"
	text_safe(null) == "?"
}

test_text_number_large if {
	text_number(10737418240) == "10737418240"
	text_number(29) == "29"
}
