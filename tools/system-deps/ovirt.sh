#!/bin/sh
# The oVirt source: ovirt-engine-sdk-python builds from its sdist against libxml2 (and pycurl,
# which it needs, against libcurl); its tests run the real ovirt-imageio daemon, which serves
# images through qemu-nbd (qemu-utils, installed by the Makefile) and is tested with qemu-io.
need=""
for pkg in libxml2-dev libcurl4-openssl-dev libssl-dev python3-dev gcc pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
command -v openssl >/dev/null 2>&1 || need="$need openssl"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "system-deps/ovirt.sh: installing$need (ovirt-engine-sdk-python builds from source; the tests make a CA with openssl)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
else
  echo "system-deps/ovirt.sh: missing$need; run as root or: sudo apt-get install$need" >&2
  exit 1
fi
