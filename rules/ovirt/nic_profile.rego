package io.konveyor.forklift.ovirt

import rego.v1

# Settings of the vNIC profile a NIC uses; none of them is carried over to the target.

ovirt_nic_profile_port_mirroring contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	nic.profile.portMirroring == true
}

ovirt_nic_profile_network_filter contains concat("", [object.get(nic, "name", "(unnamed)"), " (", nic.profile.networkFilter, ")"]) if {
	some nic in input.nics
	is_string(nic.profile.networkFilter)
	nic.profile.networkFilter != ""
}

ovirt_nic_profile_qos contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	is_string(nic.profile.qos)
	nic.profile.qos != ""
}

ovirt_nic_profile_properties contains object.get(nic, "name", "(unnamed)") if {
	some nic in input.nics
	is_array(nic.profile.properties)
	count(nic.profile.properties) > 0
}

concerns contains flag if {
	count(ovirt_nic_profile_port_mirroring) > 0
	flag := {
		"id": "ovirt.nic.port_mirroring.detected",
		"category": "Warning",
		"label": "NIC with port mirroring",
		"assessment": concat("", [
			"The vNIC profile of these NICs mirrors network traffic: ",
			concat(", ", ovirt_nic_profile_port_mirroring),
			". Port mirroring is not available on the target; monitoring tools that rely on it must get the traffic another way after migration.",
		]),
	}
}

concerns contains flag if {
	count(ovirt_nic_profile_network_filter) > 0
	flag := {
		"id": "ovirt.nic.network_filter.detected",
		"category": "Warning",
		"label": "NIC with a network filter",
		"assessment": concat("", [
			"The vNIC profile of these NICs applies a libvirt network filter: ",
			concat(", ", ovirt_nic_profile_network_filter),
			". Network filters (such as MAC anti-spoofing) are not applied on the target. Use the target network's own protections or Kubernetes network policies instead.",
		]),
	}
}

concerns contains flag if {
	count(ovirt_nic_profile_qos) > 0
	flag := {
		"id": "ovirt.nic.qos.detected",
		"category": "Warning",
		"label": "NIC with network QoS",
		"assessment": concat("", [
			"The vNIC profile of these NICs limits bandwidth with a QoS policy: ",
			concat(", ", ovirt_nic_profile_qos),
			". The limits are not applied on the target; configure traffic shaping on the target network if you need it.",
		]),
	}
}

concerns contains flag if {
	count(ovirt_nic_profile_properties) > 0
	flag := {
		"id": "ovirt.nic.custom_properties.detected",
		"category": "Warning",
		"label": "NIC with custom properties",
		"assessment": concat("", [
			"The vNIC profile of these NICs has custom device properties (VDSM hooks): ",
			concat(", ", ovirt_nic_profile_properties),
			". They are not carried over; reproduce what the hooks did on the target if the guest depends on it.",
		]),
	}
}
