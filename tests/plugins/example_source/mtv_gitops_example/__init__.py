"""An example third-party source for mtv-gitops: raw disk images described by ``vms.json``."""
