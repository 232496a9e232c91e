package io.konveyor.forklift.ova

import rego.v1

ova_disk_bus_name(disk) := disk.file if {
	is_string(disk.file)
	disk.file != ""
} else := disk.diskId if {
	is_string(disk.diskId)
} else := "(unnamed)"

ova_disk_bus_disks(bus) := {ova_disk_bus_name(disk) |
	some disk in input.disks
	is_string(disk.bus)
	lower(disk.bus) == bus
}

concerns contains flag if {
	disks := ova_disk_bus_disks("ide")
	count(disks) > 0
	flag := {
		"id": "mtv-gitops.ova.disk.bus.ide",
		"category": "Information",
		"label": "Disk on an IDE controller",
		"assessment": concat("", [
			"These disks are on an IDE controller: ",
			concat(", ", disks),
			". OpenShift Virtualization has no IDE bus, so they are attached as virtio disks. The guest needs virtio drivers (install them in Windows guests before exporting) and should mount its file systems by UUID or label.",
		]),
	}
}

concerns contains flag if {
	disks := ova_disk_bus_disks("sata")
	count(disks) > 0
	flag := {
		"id": "mtv-gitops.ova.disk.bus.sata",
		"category": "Information",
		"label": "Disk on a SATA controller",
		"assessment": concat("", [
			"These disks are on a SATA controller: ",
			concat(", ", disks),
			". They stay on a SATA bus on the target, which works without extra drivers but is slower than virtio; switch them to virtio after installing virtio drivers in the guest if performance matters.",
		]),
	}
}

concerns contains flag if {
	disks := ova_disk_bus_disks("nvme")
	count(disks) > 0
	flag := {
		"id": "mtv-gitops.ova.disk.bus.nvme",
		"category": "Information",
		"label": "Disk on an NVMe controller",
		"assessment": concat("", [
			"These disks are on an NVMe controller: ",
			concat(", ", disks),
			". They are attached as virtio disks on the target. The guest needs virtio drivers (install them in Windows guests before exporting) and should mount its file systems by UUID or label.",
		]),
	}
}
