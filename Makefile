# Depository — every target sets itself up on a fresh Debian machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup dev demo test lint typecheck pytest bench clean

help:
	@echo "make demo   - set up and run the main job (log, checkpoints, proofs, offline verification)"
	@echo "make test   - set up and run ruff, mypy --strict and pytest"
	@echo "make bench  - run the long benchmarks in benchmarks/"

$(VENV)/bin/python:
	$(PY) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PY) -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

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

clean:
	rm -rf $(VENV) demo-out .mypy_cache .pytest_cache .ruff_cache .hypothesis
