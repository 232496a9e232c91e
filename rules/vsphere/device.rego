package io.konveyor.forklift.vmware

import rego.v1

device_usb_kinds := [
	"RealUSBController",
	"VirtualUSBController",
	"VirtualUSBXHCIController",
	"VirtualUSB",
]

device_port_kinds := ["VirtualSerialPort", "VirtualParallelPort"]

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
device_input := object.filter(input, ["devices"])

# The kinds of the VM's devices (only strings can match, and concat takes only strings).
device_kinds := [k | some d in device_input.devices; k := d.kind; is_string(k)]

# The kinds joined into one string, so that one contains() tells whether a family can be
# present at all; the exact kinds are compared only when it can (most VMs have none of these).
device_kinds_text := concat("|", device_kinds)

concerns contains flag if {
	contains(device_kinds_text, "VirtualPCIPassthrough")
	"VirtualPCIPassthrough" in device_kinds
	flag := {
		"id": "vmware.passthrough_device.detected",
		"category": "Critical",
		"label": "PCI passthrough device detected",
		"assessment": "The VM uses a PCI passthrough (DirectPath I/O or vGPU) device. The device is tied to the ESXi host and is not migrated, and vSphere cannot snapshot such a VM, so a warm migration is impossible. Remove the device from the VM in vSphere before migrating; afterwards, expose an equivalent host device or GPU to the VM through KubeVirt (permittedHostDevices) if the workload needs it.",
	}
}

concerns contains flag if {
	contains(device_kinds_text, "VirtualSriovEthernetCard")
	"VirtualSriovEthernetCard" in device_kinds
	flag := {
		"id": "vmware.device.sriov.detected",
		"category": "Warning",
		"label": "SR-IOV network adapter detected",
		"assessment": "The VM has an SR-IOV passthrough network adapter. It is migrated as an ordinary network interface on the mapped network, without the virtual function. Map it to an SR-IOV network on the target (SR-IOV operator and a NetworkAttachmentDefinition) if the workload needs it, and check that the guest has a driver for the target NIC.",
	}
}

concerns contains flag if {
	contains(device_kinds_text, "USB")
	count([k | some k in device_kinds; k in device_usb_kinds]) > 0
	flag := {
		"id": "vmware.usb_controller.detected",
		"category": "Warning",
		"label": "USB controller or device detected",
		"assessment": "The VM has a USB controller or passthrough USB device. USB devices attached to the source (license dongles, tokens, serial adapters) are not migrated. The VM can be migrated; plan how the workload gets the device on the target (KubeVirt host USB passthrough, or a network USB server) before cutting over.",
	}
}

concerns contains flag if {
	contains(device_kinds_text, "Port")
	count([k | some k in device_kinds; k in device_port_kinds]) > 0
	flag := {
		"id": "mtv-gitops.vmware.device.serial_port",
		"category": "Information",
		"label": "Serial or parallel port detected",
		"assessment": "The VM has a serial or parallel port. Its backing (a host device, file, pipe or network serial port concentrator) is not migrated. The target VM gets a serial console only; reconfigure anything that talked to the VM over that port.",
	}
}
