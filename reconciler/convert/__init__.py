"""Guest conversion (virt-v2v): make a guest from another hypervisor boot on KVM with virtio.

``domain`` writes the libvirt domain XML virt-v2v reads from what the source's inventory says,
``v2v`` runs ``virt-v2v-in-place`` over raw images and reads what it found, ``kvm`` decides
whether its appliance runs with KVM or in software.  Nothing here knows a provider or a target.
"""
