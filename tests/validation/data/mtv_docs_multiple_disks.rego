package io.konveyor.forklift.ova

has_multiple_disks {
  count(input.disks) > 1
}

concerns[flag] {
  has_multiple_disks
  flag := {
    "category": "Information",
    "label": "Multiple disks detected",
    "assessment": "Multiple disks detected on this VM."
  }
}
