package io.konveyor.forklift.vmware

import rego.v1

# A KubeVirt VirtualMachine is named by a DNS-1123 label: lowercase letters, digits and '-',
# starting and ending with a letter or digit, at most 63 characters.

name_dns1123_max_length := 63

# True when s has the character shape of a DNS-1123 label (length is checked separately).
name_has_dns1123_shape(s) if {
	is_string(s)
	regex.match(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, s)
}

name_too_long(s) if {
	is_string(s)
	count(s) > name_dns1123_max_length
}

# True when s can be used unchanged as the name of the target VM.
name_is_dns1123_label(s) if {
	name_has_dns1123_shape(s)
	not name_too_long(s)
}

# The concern rules below inline these helpers: a call costs more than the check it makes.

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
name_input := object.filter(input, ["name"])

concerns contains flag if {
	name := name_input.name
	is_string(name)
	name != "" # an empty name is an error, see validate.rego
	not regex.match(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, name) # name_has_dns1123_shape, inlined
	flag := {
		"id": "vmware.vm.name.invalid",
		"category": "Warning",
		"label": "VM name is not a valid DNS-1123 label",
		"assessment": concat("", [
			"The name '", text_safe(name), "' cannot be used as a KubeVirt VM name, which allows ",
			"only lowercase letters, digits and '-', and must start and end with a letter or digit. The ",
			"VM will be renamed on the target: uppercase is lowered, '_' becomes '-', and other ",
			"characters are dropped. Rename the VM in vSphere before migrating if scripts, DNS records or ",
			"monitoring refer to it by name, and check that the new name does not collide with an ",
			"existing VM in the target namespace.",
		]),
	}
}

concerns contains flag if {
	name := name_input.name
	is_string(name)
	count(name) > 63 # name_too_long, inlined
	flag := {
		"id": "vmware.vm.name.invalid",
		"category": "Warning",
		"label": "VM name is longer than 63 characters",
		"assessment": concat("", [
			"The name is ", text_number(count(name)), " characters long; a KubeVirt VM name is ",
			"at most 63. The VM will be renamed on the target with a shortened name. Shorten the name in ",
			"vSphere before migrating to choose the target name yourself.",
		]),
	}
}
