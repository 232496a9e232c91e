"""Keystone and Glance (real) with Nova, Cinder and Neutron stand-ins."""
