package io.konveyor.forklift.vmware

import rego.v1

# Helpers to put values from the input into a concern's text.
#
# regopy 1.5.2 prints strings of the input without escaping them, so a '"' or '\' from the
# input makes the engine's JSON output unreadable, and sprintf("%s"/"%v") wraps strings made by
# other built-ins in literal quotes. Assessments are therefore built with concat, and every
# input string quoted in one goes through text_safe.

# s with '"' and '\' replaced by '_' and control characters by spaces. Most strings have none
# of them: one match then costs less than the two replacements, which change nothing.
text_safe(s) := s if {
	is_string(s)
	not regex.match(`[[:cntrl:]"\\]`, s)
} else := regex.replace(regex.replace(s, "[\"\\\\]", "_"), "[[:cntrl:]]", " ") if {
	is_string(s)
} else := text_number(s) if {
	is_number(s)
} else := "?"

# A number as text ("%d" overflows above 2^31 in regopy 1.5.2; "%v" does not).
text_number(n) := sprintf("%v", [n])
