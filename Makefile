# AuditKeep: `make run` (local collector + query API on Azurite and the simulator) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
PORT ?= 7071

.PHONY: help install run test test-fast typecheck bench bench-quick soak lint clean

help:
	@echo "make run    - collect from the simulator (or a real tenant) into Azurite and serve http://127.0.0.1:$(PORT)"
	@echo "make test   - the whole test suite (installs what it needs)"
	@echo "make bench  - ingestion and query benchmarks; numbers go to docs/performance.md"
	@echo "make bench-quick - the same benchmarks on tiny data (a smoke run; writes no docs)"
	@echo "make soak   - fault and crash soak: 200 cycles, 20 kills; figures go to docs/reliability.md"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov lives in its own venv: it pins older versions of packages the app uses.
$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov>=3.2,<4"
	touch $@

install: $(VENV)/.installed node_modules/.installed

run: install
	$(PY) -m devtools.run --port $(PORT)

# Debian's chromium for the browser tests (tests/ui/): Playwright drives it by path and downloads no browser.
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Two workers (pytest-xdist), a test file each at a time: every worker has its own Azurite and
# simulators (tests/conftest.py: free ports, unique names), and a module's shared fixtures are built once.
test: install /usr/bin/chromium $(CHECKOV_VENV)/.installed typecheck
	CHECKOV_BIN=$(CURDIR)/$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -q -n 2 --dist loadfile

test-fast: install
	$(PY) -m pytest -q -m "not slow"

# mypy --strict over collector/ and function_app.py (configured in pyproject.toml).
typecheck: install
	$(PY) -m mypy

bench: install
	$(PY) -m devtools.bench

# Every benchmark end to end on tiny data (about a minute); prints numbers, writes no docs.
bench-quick: install
	$(PY) -m devtools.bench --quick

# The fault and crash soak of issue 12 (docs/reliability.md): about 15 minutes.
soak: install
	$(PY) -m devtools.soak --cycles 200 --kills 20 --write

lint: install
	$(PY) -m ruff check collector simulator devtools tests function_app.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .run .pytest_cache
