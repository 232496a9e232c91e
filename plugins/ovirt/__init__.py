"""The oVirt / Red Hat Virtualization source (its validation rules; the connection comes next)."""
