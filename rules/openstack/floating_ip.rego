package io.konveyor.forklift.openstack

import rego.v1

# addresses: {network name: [{addr, version, OS-EXT-IPS:type (fixed | floating)}]}
openstack_floating_ip_addresses contains object.get(address, "addr", "(unknown)") if {
	some addresses in input.addresses
	some address in addresses
	lower(address["OS-EXT-IPS:type"]) == "floating"
}

concerns contains flag if {
	count(openstack_floating_ip_addresses) > 0
	flag := {
		"id": "openstack.network.floating_ips.detected",
		"category": "Warning",
		"label": "Floating IP address",
		"assessment": concat("", [
			"The server is reachable through floating IP addresses: ",
			concat(", ", openstack_floating_ip_addresses),
			". Floating IPs belong to OpenStack and are not migrated. Expose the migrated VM another way (a Service, a route, or an address on a bridged network) and update DNS records and clients.",
		]),
	}
}
