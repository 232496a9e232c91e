#!/bin/sh
# OVA providers on an NFS share (issue 22): the tests run a real NFS server in user space
# (nfs-ganesha with its VFS backend, registered through rpcbind), qemu reads VMDKs from the
# share through its libnfs block driver (qemu-block-extra), and the benchmark compares our reads
# with nfs-cat (libnfs-utils).
need=""
for pkg in nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils qemu-block-extra; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "system-deps/nfs.sh: installing$need (the tests' NFS server for OVA shares, qemu's NFS driver, nfs-cat for the benchmark)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
else
  echo "system-deps/nfs.sh: missing$need; run as root or: sudo apt-get install$need" >&2
  exit 1
fi
