package io.konveyor.forklift.vmware

import rego.v1

# The fields this file reads, cut out of the VM document once (see INPUT.md, "Why projections").
firmware_input := object.filter(input, ["firmware", "secureBoot", "tpmEnabled"])

concerns contains flag if {
	firmware_input.firmware == "efi"
	flag := {
		"id": "mtv-gitops.vmware.firmware.uefi",
		"category": "Information",
		"label": "VM boots with UEFI firmware",
		"assessment": "The VM boots with UEFI and is created with UEFI firmware on the target. The NVRAM (boot entries) is not copied, so the guest boots from the removable-media path (\\EFI\\BOOT\\BOOTX64.EFI); most distributions and Windows install it. If the target VM does not boot, recreate the boot entry from a rescue shell.",
	}
}

concerns contains flag if {
	firmware_input.secureBoot == true
	flag := {
		"id": "mtv-gitops.vmware.secure_boot.enabled",
		"category": "Warning",
		"label": "UEFI secure boot enabled",
		"assessment": "Secure boot is enabled. The keys enrolled in the VM's NVRAM are not copied: the target VM boots with the default Microsoft keys (which KubeVirt's firmware uses), so a guest signed with custom or MOK-enrolled keys may refuse to boot. Check the guest's boot chain, and re-enroll custom keys after migration.",
	}
}

concerns contains flag if {
	firmware_input.tpmEnabled == true
	flag := {
		"id": "vmware.tpm.detected",
		"category": "Warning",
		"label": "VM has a virtual TPM",
		"assessment": "The VM has a virtual TPM; its contents (keys, sealed secrets) are not migrated. Before migrating, suspend BitLocker or make sure the recovery key is at hand, and unbind LUKS volumes sealed to the TPM (clevis); otherwise the guest asks for a recovery key or cannot unlock its disks. Add a persistent vTPM to the target VM if needed.",
	}
}
