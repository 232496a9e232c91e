"""mtv-gitops: migrate VMs to KubeVirt from Forklift-compatible manifests kept in git."""

__version__ = "0.1.0"
