#!/bin/sh
# Guest conversion (issue 17): virt-v2v-in-place and its appliance, plus what the tests need to
# build a real guest (mmdebstrap) and boot it (qemu-system-x86_64).
set -e
missing=""
command -v virt-v2v-in-place >/dev/null 2>&1 || missing="$missing virt-v2v"
command -v virt-customize >/dev/null 2>&1 || missing="$missing libguestfs-tools"
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing="$missing linux-image-amd64"
# Debian's virt-v2v does not pull these in, yet virt-v2v-in-place needs them ("nbdkit is not installed")
command -v nbdkit >/dev/null 2>&1 || missing="$missing nbdkit"
command -v nbdinfo >/dev/null 2>&1 || missing="$missing libnbd-bin"
command -v mmdebstrap >/dev/null 2>&1 || missing="$missing mmdebstrap"
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make: guest conversion needs:$missing; run as root or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "make: installing Debian packages$missing (guest conversion: virt-v2v, its appliance kernel; the tests' guest build and boot check)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing \
  libguestfs-tools virt-v2v linux-image-amd64 nbdkit libnbd-bin >/dev/null
