package io.example.mtv_gitops.source

import rego.v1

# What mtv-gitops queries for each VM: data.io.example.mtv_gitops.source.validate
validate := {
	"rules_version": rules_version.rules_version,
	"errors": errors,
	"concerns": concerns,
}

errors contains "The VM document has no name." if {
	not is_string(input.name)
}

# The one rule of this source: a VM tagged "legacy" is worth a look before it moves.
concerns contains flag if {
	"legacy" in input.tags
	flag := {
		"id": "example.legacy",
		"category": "Warning",
		"label": "Legacy VM",
		"assessment": "The VM is tagged legacy: check its guest before it runs on KubeVirt.",
	}
}
