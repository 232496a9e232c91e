package io.konveyor.forklift.ovirt

import rego.v1

# What the reconciler queries for each VM: data.io.konveyor.forklift.ovirt.validate
validate := {
	"rules_version": RULES_VERSION,
	"errors": errors,
	"concerns": concerns,
}

# `not is_string(input.name)` would be undefined, not true, for a document without a name (OPA
# binds a negated call's arguments first): negate a rule that says the name is there instead.
ovirt_validate_has_name if is_string(input.name)

# Errors say that the document itself cannot be validated; concerns are about the VM.
errors contains "The VM document has no name: the inventory did not describe this VM." if {
	not ovirt_validate_has_name
}

errors contains "The VM document has an empty name: the inventory did not describe this VM." if {
	input.name == ""
}
