# Everything a fresh Debian machine needs is installed by these targets.
PYTHON ?= python3
VENV ?= .venv
WORKSPACE ?= /tmp/mtv-gitops-demo
BIN := $(VENV)/bin

.PHONY: demo demo-warm demo-convert test lint bench system-deps install clean

system-deps:
	@if ! command -v qemu-img >/dev/null 2>&1 || ! command -v qemu-nbd >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian package qemu-utils (qemu-img, qemu-nbd)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-utils >/dev/null; \
	  else \
	    echo "make: qemu-img/qemu-nbd missing; run as root or: sudo apt-get install qemu-utils" >&2; exit 1; \
	  fi; \
	fi
	@command -v git >/dev/null 2>&1 || { echo "make: installing git"; apt-get install -y -qq git >/dev/null; }
	@if ! command -v kubectl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian package kubernetes-client (kubectl: the tests render deploy/ with kubectl kustomize)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null; \
	  else \
	    echo "make: kubectl missing; run as root or: sudo apt-get install kubernetes-client" >&2; exit 1; \
	  fi; \
	fi
	@if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/github.com/vmware/govmomi ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian packages golang-go, golang-github-vmware-govmomi-dev (the tests' vCenter simulator)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-vmware-govmomi-dev >/dev/null; \
	  else \
	    echo "make: go/govmomi missing; run as root or: sudo apt-get install golang-go golang-github-vmware-govmomi-dev" >&2; exit 1; \
	  fi; \
	fi
	@for script in tools/system-deps/*.sh; do [ -e "$$script" ] || continue; sh "$$script" || exit 1; done

$(BIN)/mtv-gitops: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: Python >= 3.11 required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,vsphere,ovirt,openstack,nfs]'
	@touch $@

install: system-deps $(BIN)/mtv-gitops

demo: install
	$(BIN)/mtv-gitops demo --workspace $(WORKSPACE)

# a warm migration from the vCenter simulator (system-deps installs go and govmomi for it)
demo-warm: install
	$(BIN)/mtv-gitops demo --warm --workspace $(WORKSPACE)-warm

# a real Debian guest (built once, cached in ~/.cache/mtv-gitops) migrated cold from an OVA and
# from the vCenter simulator, converted by virt-v2v and booted on virtio; minutes in software
# mode (README "Guest conversion")
demo-convert: install
	MTV_GITOPS_GUEST_ALL=1 $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/convert/test_guest_boot.py tests/convert/test_guest_vsphere.py \
	  tests/convert/test_guest_kubevirt.py

test: install
	$(BIN)/ruff check reconciler plugins testpeers tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/bench_transfer.py
	$(BIN)/python bench/bench_validation.py
	$(BIN)/python bench/bench_vsphere_inventory.py
	$(BIN)/python bench/bench_vsphere_disk.py
	$(BIN)/python bench/bench_warm_round.py
	$(BIN)/python bench/bench_ovirt_disk.py
	$(BIN)/python bench/bench_nfs_ova.py
	$(BIN)/python bench/bench_openstack_download.py
	$(BIN)/python bench/bench_transfer_cli.py
	$(BIN)/python bench/bench_metrics.py

clean:
	rm -rf $(VENV) .pytest_cache
