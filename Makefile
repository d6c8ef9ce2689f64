# RunSurge: `make demo` runs a network and a job end to end; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install proto demo test test-unit test-integration bench lint clean

install: $(STAMP)

$(STAMP): requirements-dev.txt proto/pyproject.toml pki/pyproject.toml master/pyproject.toml worker/pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e proto -e pki -e "master[postgresql]" -e worker -e client
	touch $(STAMP)

proto: install  ## regenerate the gRPC stubs from proto/runsurge/v1/*.proto
	$(PY) proto/build_stubs.py

demo: install  ## a master + 2 workers on loopback run a 3-stage job; prints the result
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest tests -q

test-unit: install
	$(PY) -m pytest tests/unit -q

test-integration: install
	$(PY) -m pytest tests/integration -q

bench: install
	$(PY) bench/dispatch.py
	$(PY) bench/transfer.py

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
