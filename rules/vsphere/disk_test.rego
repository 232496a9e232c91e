package io.konveyor.forklift.vmware

import rego.v1

test_disk_name_prefers_file if {
	disk_name({"file": "[ds1] vm/vm.vmdk", "key": 2000}) == "[ds1] vm/vm.vmdk"
}

test_disk_name_falls_back_to_key if {
	disk_name({"key": 2001}) == "disk key 2001"
	disk_name({"file": "", "key": 2001}) == "disk key 2001"
}

test_disk_name_placeholder if {
	disk_name({}) == "(unnamed disk)"
}

test_disk_capacity_invalid if {
	disk_capacity_invalid(0)
	disk_capacity_invalid(-512)
	not disk_capacity_invalid(512)
	not disk_capacity_invalid("0")
}

test_disk_capacity_unaligned if {
	disk_capacity_unaligned(513)
	disk_capacity_unaligned(17179869185)
	disk_capacity_unaligned(1024.5)
	not disk_capacity_unaligned(17179869184)
	not disk_capacity_unaligned(0)
	not disk_capacity_unaligned("1000")
}
