package io.konveyor.forklift.ovirt

import rego.v1

# Bump whenever a rule of this set changes, so that VMs are validated again.
RULES_VERSION := 1

rules_version := {"rules_version": RULES_VERSION}
