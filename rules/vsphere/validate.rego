package io.konveyor.forklift.vmware

import rego.v1

# The document the validation service queries:
#   data.io.konveyor.forklift.vmware.validate
# `concerns` is the union of every `concerns contains flag if ...` rule of the package, the
# defaults here and the repo's own rules alike.
validate := {
	"rules_version": RULES_VERSION,
	"errors": errors,
	"concerns": concerns,
}

# Errors say that the document itself is unusable, not that the VM has a problem.

errors contains "input is not an object: expected a vSphere VM inventory document" if {
	not is_object(input)
}

errors contains "missing required field 'name' in the VM document" if {
	count(name_input) == 0
}

errors contains msg if {
	vm_name := name_input.name
	not is_string(vm_name)
	msg := concat("", ["field 'name' must be a string, got ", type_name(vm_name)])
}

errors contains "field 'name' is empty" if {
	name_input.name == ""
}
