#!/bin/sh
# Observability (issue 19): promtool checks and unit-tests deploy/monitoring's alerts, a real
# Prometheus scrapes a daemon in the tests; headless Chromium reads the status page.
set -e
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make: observability tests need:$missing; run as root or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "make: installing Debian packages$missing (promtool and Prometheus for the alert rules and the scrape test; Chromium for the status page test)"
apt-get update -qq -o DPkg::Lock::Timeout=600
# the package's service is not started here (no init system); the tests run their own
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o DPkg::Lock::Timeout=600 prometheus chromium chromium-driver >/dev/null
