package io.konveyor.forklift.openstack

import rego.v1

# NIC models the target keeps; anything else (vmxnet3, ne2k_pci, spapr-vlan...) becomes virtio.
openstack_vif_model_kept := {"virtio", "e1000", "e1000e", "rtl8139", "pcnet"}

concerns contains flag if {
	is_string(input.image.properties.hw_vif_model)
	model := lower(input.image.properties.hw_vif_model)
	model != ""
	not model in openstack_vif_model_kept
	flag := {
		"id": "openstack.network.vif_model.unsupported",
		"category": "Warning",
		"label": "Unsupported NIC model",
		"assessment": concat("", [
			"The VM's image gives it '",
			input.image.properties.hw_vif_model,
			"' NICs, a model OpenShift Virtualization does not offer. They become virtio NICs on the target. Make sure the guest has a virtio network driver, and check network settings tied to the old device (interface names, MAC-bound configuration).",
		]),
	}
}
