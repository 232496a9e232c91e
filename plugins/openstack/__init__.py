"""The OpenStack source (its validation rules; the connection comes next)."""
