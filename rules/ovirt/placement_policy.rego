package io.konveyor.forklift.ovirt

import rego.v1

# Affinities that keep the VM on its host(s): it is not migrated automatically in oVirt.
ovirt_placement_policy_pinned := {"pinned", "user_migratable"}

ovirt_placement_policy_affinity := lower(input.placementPolicyAffinity) if {
	is_string(input.placementPolicyAffinity)
}

concerns contains flag if {
	ovirt_placement_policy_affinity in ovirt_placement_policy_pinned
	flag := {
		"id": "mtv-gitops.ovirt.placement_policy.pinned",
		"category": "Warning",
		"label": "VM pinned to its host",
		"assessment": concat("", [
			"The VM's placement policy is '",
			input.placementPolicyAffinity,
			"': it does not move between hosts on its own. The target VM has no node affinity. If the guest depends on a particular host (licensing, attached hardware), add a nodeSelector or affinity to the VirtualMachine after migration.",
		]),
	}
}

concerns contains flag if {
	ovirt_placement_policy_affinity == "migratable"
	flag := {
		"id": "ovirt.placement_policy.affinity_set",
		"category": "Warning",
		"label": "VM can be live migrated",
		"assessment": "The VM may be live migrated between hosts in oVirt. To keep that ability on the target, live migration must be enabled there and the VM's disks must be on storage with ReadWriteMany access; choose the StorageMap's storage classes accordingly.",
	}
}
