package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
cluster_input := object.filter(
	input.host.cluster,
	["drsEnabled", "dasEnabled", "dpmEnabled", "hostAffinityVms"],
)

concerns contains flag if {
	cluster_input.drsEnabled == true
	flag := {
		"id": "vmware.drs.enabled",
		"category": "Information",
		"label": "VM running in a DRS-enabled cluster",
		"assessment": "Distributed resource scheduling has no counterpart on the target: the Kubernetes scheduler places the VM, and live migration (with ReadWriteMany storage) moves it. The VM can be migrated. DRS may vMotion the source VM during a long warm migration; if disks are read straight from ESXi hosts, set the VM's DRS automation level to manual for the migration window.",
	}
}

concerns contains flag if {
	cluster_input.dasEnabled == true
	flag := {
		"id": "mtv-gitops.vmware.ha.enabled",
		"category": "Warning",
		"label": "VM running in a vSphere HA cluster",
		"assessment": "vSphere HA (restart on host failure, VM monitoring) is not migrated. On the target, set the VM's runStrategy to Always so that it is restarted, and use ReadWriteMany storage so that it can be moved off a failing node. If HA VM monitoring is on, exclude the VM during a warm migration so that HA does not reset it mid-copy.",
	}
}

concerns contains flag if {
	cluster_input.dpmEnabled == true
	flag := {
		"id": "vmware.dpm.enabled",
		"category": "Information",
		"label": "VM running in a DPM-enabled cluster",
		"assessment": "Distributed power management can put ESXi hosts into standby. Disk data is read through the VM's host, so a host that goes to standby during the copy (a powered-off VM's host may be idle) breaks the transfer. Disable DPM, or set the hosts involved to manual, for the migration window. DPM has no counterpart on the target.",
	}
}
