"""Test peers the tests and the benchmarks both start: real servers nobody here wrote (the
ovirt-imageio daemon, Keystone, Glance) in virtual environments of their own, and the small
stand-ins for what cannot run here (an oVirt engine, Nova, Cinder, Neutron) that speak the real
protocols. Not part of the installed package: the reconciler and the plugins never import it."""
