"""Targets: where migrated VMs land (the embedded local folder, or a KubeVirt cluster)."""
