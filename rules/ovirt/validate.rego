package io.konveyor.forklift.ovirt

import rego.v1

# What the reconciler queries for each VM: data.io.konveyor.forklift.ovirt.validate
validate := {
	"rules_version": RULES_VERSION,
	"errors": errors,
	"concerns": concerns,
}

# Errors say that the document itself cannot be validated; concerns are about the VM.
errors contains "The VM document has no name: the inventory did not describe this VM." if {
	not is_string(input.name)
}

errors contains "The VM document has an empty name: the inventory did not describe this VM." if {
	input.name == ""
}
