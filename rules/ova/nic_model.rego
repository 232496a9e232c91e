package io.konveyor.forklift.ova

import rego.v1

# NIC models the target keeps (VMware's "VirtualE1000" style names included); anything else
# (vmxnet3, pcnet32, ...) becomes virtio.
ova_nic_model_kept := {"virtio", "e1000", "e1000e", "rtl8139", "pcnet"}

ova_nic_model_converted contains concat("", [object.get(nic, "name", "(unnamed)"), " (", nic.model, ")"]) if {
	some nic in input.nics
	is_string(nic.model)
	nic.model != ""
	model := replace(lower(nic.model), "virtual", "")
	not model in ova_nic_model_kept
}

concerns contains flag if {
	count(ova_nic_model_converted) > 0
	flag := {
		"id": "mtv-gitops.ova.nic.model.converted",
		"category": "Information",
		"label": "NIC model becomes virtio",
		"assessment": concat("", [
			"These NICs use a model OpenShift Virtualization does not offer: ",
			concat(", ", ova_nic_model_converted),
			". They become virtio NICs on the target. Make sure the guest has a virtio network driver (install it in Windows guests before exporting), and check settings tied to the old device such as interface names.",
		]),
	}
}
