package io.konveyor.forklift.openstack

import rego.v1

# A Kubernetes object name must be a DNS-1123 label: 1 to 63 characters among a-z, 0-9 and "-",
# beginning and ending with a letter or a digit.
openstack_name_is_dns1123_label(name) if {
	count(name) <= 63
	regex.match(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, name)
}

# The name the target VM gets instead: lower case, "_" becomes "-", every other character outside
# a-z, 0-9 and "-" is dropped, cut to 63 characters, no "-" at either end.
openstack_name_on_target(name) := renamed if {
	cleaned := regex.replace(replace(lower(name), "_", "-"), `[^a-z0-9-]`, "")
	renamed := trim(substring(cleaned, 0, 63), "-")
	renamed != ""
} else := "vm"

concerns contains flag if {
	is_string(input.name)
	input.name != ""
	vm_name := input.name
	not openstack_name_is_dns1123_label(vm_name)
	flag := {
		"id": "openstack.vm.name.invalid",
		"category": "Warning",
		"label": "VM name is not a valid Kubernetes name",
		"assessment": concat("", [
			"Kubernetes names must be DNS-1123 labels (at most 63 characters: lower-case letters, digits and '-', starting and ending with a letter or digit). The VM will be renamed '",
			openstack_name_on_target(input.name),
			"' on the target, with a short suffix if that name is already taken. Rename the server in OpenStack before migrating if you want to choose the name yourself.",
		]),
	}
}
