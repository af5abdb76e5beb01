# Berth: `make demo` and `make test` do all their set-up on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
# The slow variants (a million-entry layer, long fault-injection runs) run with `make test-slow`.
PYTEST_ARGS ?= -m "not slow and not vm"
# Two workers, each with a lab of its own; a test file never splits across them (tests/conftest.py).
PYTEST_WORKERS ?= -n 2 --dist loadfile
STAMP := $(VENV)/.berth-deps

.PHONY: help deps lint unit sanity integration test test-slow demo bench fuzz clean

help:
	@echo "make demo   - 3 local systemd hosts: build, push, roll out v1 and v2, a broken v3 rolled back, fleet rollback"
	@echo "make test   - lint, type checks, unit, collection sanity and integration tests on lab hosts"
	@echo "make bench  - benchmarks side by side with the peers (see bench/README.md)"
	@echo "make fuzz   - the layer applier and Containerfile parser fuzz targets, FUZZ_SECONDS each (default 60)"
	@echo "make deps   - Debian packages and the pinned virtual environment (run by the others)"

deps: $(STAMP)
	@scripts/install-deps.sh

$(STAMP): requirements/dev.txt runtime/pyproject.toml
	@scripts/install-deps.sh
	@test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e runtime
	@touch $@

lint: deps
	$(VENV)/bin/ruff check runtime plugins tests bench scripts
	$(VENV)/bin/ruff format --check runtime plugins tests bench scripts
	cd runtime && $(VENV)/bin/mypy berth

unit: deps
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

sanity: deps
	VENV=$(VENV) tests/sanity/run.sh

integration: deps
	$(PY) -m pytest tests/integration $(PYTEST_WORKERS) $(PYTEST_ARGS)

# One pytest run for unit and integration tests, so the suite ends on one summary line.
test: deps lint sanity
	$(PY) -m pytest tests $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-vm: deps
	@scripts/install-deps.sh vm
	$(PY) -m pytest tests -m vm

test-slow: deps
	$(PY) -m pytest tests -m slow

demo: deps
	VENV=$(VENV) scripts/demo.sh

bench: deps
	@scripts/install-deps.sh vm
	$(PY) bench/run.py

# Coverage-guided (atheris) fuzzing of the layer applier and the Containerfile parser, a fixed
# time each; a crash exits non-zero with its input saved (tests/fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz: deps
	$(PY) -m pip install -q --disable-pip-version-check -r requirements/fuzz.txt
	BERTH_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) tests/fuzz/fuzz_layers.py --engine atheris
	BERTH_FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) tests/fuzz/fuzz_containerfile.py --engine atheris

clean:
	rm -rf $(VENV) .build .mypy_cache .ruff_cache .pytest_cache
