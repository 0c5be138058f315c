# Two entry points: `make run` starts the daemon on the embedded default config,
# `make test` runs the whole gate (lint, types, tests). Both create the venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest venv clean

$(STAMP): pyproject.toml setup.py daemon/_speedups.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	mkdir -p data
	$(BIN)/tocsin --config.file=configs/tocsin.yml --storage.path=data/ --cluster.listen-address=

lint: $(STAMP)
	$(BIN)/ruff check daemon cluster tests benchmarks
	$(BIN)/ruff format --check daemon cluster tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) data
