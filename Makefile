# Two entry points: `make run` starts the daemon on the embedded default config,
# `make test` runs the whole gate (lint, types, tests). Both create the venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every installed package pinned (`make lock` rewrites it): CI breaks only on our commits.
CONSTRAINTS := constraints.txt
LOCK_VENV := .lock-venv

.PHONY: run test lint typecheck pytest venv lock clean install

$(STAMP): pyproject.toml setup.py daemon/_speedups.c $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c $(CONSTRAINTS) -U pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[test]'
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

# Resolve the newest versions pyproject.toml allows in a fresh venv and pin them all.
lock:
	rm -rf $(LOCK_VENV)
	$(PY) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q -U pip
	$(LOCK_VENV)/bin/pip install -q -e '.[test]'
	head -3 $(CONSTRAINTS) > $(CONSTRAINTS).new
	$(LOCK_VENV)/bin/pip freeze --all --exclude-editable | grep -v '^setuptools==' >> $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) $(LOCK_VENV) data

# As root: tocsin in its own venv under /opt/tocsin, the unit, a `tocsin` system user and
# /etc/tocsin/tocsin.yml (kept if it exists). Then: systemctl enable --now tocsin
PREFIX ?= /opt/tocsin
install:
	$(PY) -m venv $(PREFIX)
	$(PREFIX)/bin/pip install -q -U pip
	$(PREFIX)/bin/pip install -q -c $(CONSTRAINTS) .
	id -u tocsin >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/tocsin --shell /usr/sbin/nologin tocsin
	install -D -m 0644 systemd/tocsin.service /etc/systemd/system/tocsin.service
	test -e /etc/tocsin/tocsin.yml || install -D -m 0640 -g tocsin configs/tocsin.yml /etc/tocsin/tocsin.yml
	if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
