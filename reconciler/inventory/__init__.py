"""Observed state of source providers: what VMs, networks and storage exist."""
