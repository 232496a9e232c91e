package io.example.mtv_gitops.source

import rego.v1

rules_version := {"rules_version": 1}
