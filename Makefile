# RunSurge: `make demo` runs a network and a job end to end; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: system-demo system-test install proto image demo demo-process test test-unit test-integration bench lint clean provision test-provision check-fresh

# The Debian packages (scripts/setup-system.sh: installs what is missing as root, else says what to run).
system-demo:
	@bash scripts/setup-system.sh demo

system-test:
	@bash scripts/setup-system.sh test

install: $(STAMP)

$(STAMP): requirements-dev.txt proto/pyproject.toml pki/pyproject.toml master/pyproject.toml worker/pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e proto -e pki -e "master[postgresql]" -e worker -e client
	touch $(STAMP)

proto: install  ## regenerate the gRPC stubs from proto/runsurge/v1/*.proto
	$(PY) proto/build_stubs.py

image: install  ## build (or reuse) the guest VM image every task runs in (root; ~2 min the first time)
	$(PY) vm-images/build.py

demo: system-demo install image  ## a master + 2 workers on loopback run a 3-stage job in VMs; prints the result
	$(PY) scripts/demo.py

demo-process: install  ## the same without VMs (no isolation; seconds instead of minutes)
	$(PY) scripts/demo.py --sandbox process

PYTEST_ARGS ?=  # e.g. make test PYTEST_ARGS="-k cancel" (a part of the suite, same set-up)
test: system-test install image
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit -q

test-integration: install
	$(PY) -m pytest tests/integration -q

bench: install
	$(PY) bench/dispatch.py
	$(PY) bench/transfer.py
	$(PY) bench/speedup.py

# `make demo` on a fresh Debian 12 machine, shown in a throw-away root (root; ~15 min; docs/fresh-machine.md)
check-fresh:
	bash scripts/fresh-machine-check.sh

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Provisioning with Ansible (ansible/README.md). ansible-core and ansible-lint go into their own
# venv (.venv/ansible); the playbook's first task builds the wheelhouse (build/wheelhouse) and the
# hosts install from it. Extra ansible-playbook arguments: make provision ANSIBLE_ARGS="-e k=v".
provision:  ## install a master + a worker on THIS machine (root) from the local inventory
	cmp -s ansible/requirements.txt .venv/ansible/.installed || { \
	  $(PYTHON) -m venv .venv/ansible && .venv/ansible/bin/pip install -q -r ansible/requirements.txt && \
	  cp ansible/requirements.txt .venv/ansible/.installed; }
	cd ansible && ../.venv/ansible/bin/ansible-playbook site.yml $(ANSIBLE_ARGS)

test-provision: install  ## provision this machine, run a job on it, check it with testinfra; then the VM target
	cmp -s ansible/requirements.txt .venv/ansible/.installed || { \
	  $(PYTHON) -m venv .venv/ansible && .venv/ansible/bin/pip install -q -r ansible/requirements.txt && \
	  cp ansible/requirements.txt .venv/ansible/.installed; }
	$(PY) -m pip install -q pytest-testinfra
	RUNSURGE_TEST_PROVISION=1 $(PY) -m pytest tests/provision -q
