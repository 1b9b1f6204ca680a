# Depository — every target sets itself up on a fresh Debian machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup native system-deps demo test lint typecheck pytest bench loadtest loadtest-certify clean

help:
	@echo "make demo   - set up and run the main job (log, checkpoints, proofs, offline verification)"
	@echo "make test   - set up and run ruff, mypy --strict and pytest"
	@echo "make bench  - run the long benchmarks in benchmarks/"

# Debian packages: Pango/HarfBuzz and fonts for WeasyPrint (PDF reports), poppler-utils
# for independent PDF checks in tests, chromium for the dashboard's headless-browser test
# (driven by Playwright's Python package; no browser is downloaded), prometheus for promtool
# (checks the shipped alerting rules); gcc, libc6-dev, libssl-dev and libsqlite3-dev build the native
# accelerators (setup.py, ADR 0012). Installed only when one is missing.
SYSTEM_PACKAGES := gcc libc6-dev libssl-dev libsqlite3-dev fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils openssl chromium prometheus
# A throwaway single-node Ceph cluster with the RADOS Gateway (S3 Object Lock) for the S3
# backend's tests; the tests start and stop it themselves (scripts/ceph-rgw-local.sh).
CEPH_PACKAGES := ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl
# PostgreSQL for the PostgreSQL engine's tests: they start a throwaway server themselves
# (initdb + pg_ctl as an unprivileged user, tests/_pg.py).
PG_PACKAGES := postgresql

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES) $(CEPH_PACKAGES) $(PG_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/bin/python:
	$(PY) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml setup.py | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The native accelerators (depository/*/_c*.c, see setup.py) are rebuilt in place whenever a
# source is newer than its module; DEPOSITORY_NATIVE=0 runs the pure-Python twins instead.
native: system-deps $(STAMP)
	$(BIN)/python setup.py -q build_ext --inplace

setup: system-deps $(STAMP) native

demo: setup
	$(BIN)/python -m depository.demo --out demo-out

lint: setup
	$(BIN)/ruff check depository tests benchmarks

typecheck: setup
	$(BIN)/mypy --strict depository

pytest: setup
	$(BIN)/pytest -q -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

bench: setup
	$(BIN)/python benchmarks/merkle.py
	$(BIN)/python benchmarks/store.py
	$(BIN)/python benchmarks/s3.py
	$(BIN)/python benchmarks/evidence.py
	$(BIN)/python benchmarks/migrate.py --rounds 1
	$(BIN)/python benchmarks/fuzz.py

# The seven scale limits, measured against a spawned store and server on 127.0.0.1.
loadtest: setup
	$(BIN)/depository loadtest run --spawn --profile quick --out loadtest-quick

loadtest-certify: setup
	$(BIN)/depository loadtest run --spawn --profile certify --out loadtest-certify

clean:
	rm -rf build depository/*/_c*.so $(VENV) demo-out test-output loadtest-quick loadtest-certify .mypy_cache .pytest_cache .ruff_cache .hypothesis
