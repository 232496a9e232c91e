"""The oVirt test peers: the real
ovirt-imageio daemon run from a cached virtualenv of its own (GPL: a separate process, never
imported), qemu-nbd exports, and a small engine whose XML ovirtsdk4's own writers produce. The
tests and ``bench/bench_ovirt_disk.py`` start them; the plugin itself never imports them."""
