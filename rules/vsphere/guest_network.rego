package io.konveyor.forklift.vmware

import rego.v1

# What VMware Tools reports about the guest's network identity: hostName, and guestNetworks (one
# entry per address of the guest).

guest_network_input := object.filter(input, ["hostName", "guestNetworks"])

concerns contains flag if {
	guest_network_input.hostName == ""
	flag := {
		"id": "vmware.hostname.empty",
		"category": "Warning",
		"label": "Guest host name not reported",
		"assessment": "VMware Tools reports an empty host name for the guest (the VM is off, or Tools does not run). The name the guest uses on the network is then unknown and may change after migration; check it in the guest.",
	}
}

concerns contains flag if {
	guest_network_input.hostName == "localhost.localdomain"
	flag := {
		"id": "vmware.hostname.default",
		"category": "Warning",
		"label": "Guest host name is the default",
		"assessment": "The guest's host name is localhost.localdomain, the default of a fresh install. It may be changed after migration; set a real host name in the guest if anything depends on it.",
	}
}

concerns contains flag if {
	count(guest_network_input.guestNetworks) == 0
	flag := {
		"id": "vmware.vm_missing_ip.detected",
		"category": "Warning",
		"label": "No IP address reported for the guest",
		"assessment": "VMware Tools reports no IP address for the guest (the VM is off, or Tools does not run), so its static addresses cannot be known before migration and are not carried over. Note the guest's network settings, or power the VM on with Tools running and validate again.",
	}
}
