package io.konveyor.forklift.vmware

import rego.v1

# Bump whenever a rule of this folder changes (`mtv-gitops rules bump REPO --provider vsphere`),
# so that every VM is validated again.
RULES_VERSION := 1

rules_version := {"rules_version": RULES_VERSION}
