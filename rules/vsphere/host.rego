package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
host_input := object.filter(input.host, ["inMaintenance", "connectionState", "productVersion"])

# ESXi releases older than 6.5, the oldest the migration supports (MTV 2.4: vSphere 6.5 or
# later), by the first three characters of productVersion ("6.0.0" -> "6.0"). A lookup rather
# than parsing the number: this runs for every VM and parsing costs several built-in calls.
host_unsupported_versions := ["3.0", "3.5", "4.0", "4.1", "5.0", "5.1", "5.5", "6.0"]

host_version_unsupported(v) if {
	is_string(v)
	substring(v, 0, 3) in host_unsupported_versions
}

concerns contains flag if {
	host_input.inMaintenance == true
	flag := {
		"id": "mtv-gitops.vmware.host.maintenance",
		"category": "Warning",
		"label": "ESXi host is in maintenance mode",
		"assessment": "The VM's host is in maintenance mode (or entering it): vSphere may move or power off its VMs, and disk transfers through that host can be cut off. Finish the maintenance, or move the VM to another host, before migrating.",
	}
}

concerns contains flag if {
	state := host_input.connectionState
	is_string(state)
	state != ""
	state != "connected"
	flag := {
		"id": "mtv-gitops.vmware.host.not_connected",
		"category": "Critical",
		"label": "ESXi host is not connected to vCenter",
		"assessment": concat("", [
			"The VM's host is '", text_safe(state), "'. Snapshots, power operations ",
			"and disk transfers all go through a connected host, so the VM cannot be migrated. Reconnect ",
			"the host in vCenter and refresh the inventory.",
		]),
	}
}

concerns contains flag if {
	version := host_input.productVersion
	is_string(version) # host_version_unsupported, inlined (a call costs more than the check)
	substring(version, 0, 3) in host_unsupported_versions
	flag := {
		"id": "mtv-gitops.vmware.host.version.unsupported",
		"category": "Warning",
		"label": "ESXi version older than 6.5",
		"assessment": concat("", [
			"The VM's host runs ESXi ", text_safe(version), "; migration is supported ",
			"from vSphere 6.5. Disk transfers through VDDK and changed block queries may fail. Upgrade ",
			"the host, or move the VM to a host running 6.5 or later, before migrating.",
		]),
	}
}
