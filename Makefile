# Two commands do all setup on a fresh machine: `make dev` (run the service) and `make test`.
SHELL := /bin/bash
export PYTHONPATH := src
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The Worker's vendored dependencies (what `wrangler dev` runs and `wrangler deploy` uploads).
BUNDLE_STAMP := python_modules/bundle.json
LINT_PATHS := $(wildcard src tests bench scripts)

.PHONY: dev test test-fast lint fmt migrate cron demo bench roundtrips mutation clean install browser docs bundle deploy

install: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml scripts/requirements.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) scripts/requirements.py dev fast > $(VENV)/requirements.txt
	$(PY) -m pip install -q -r $(VENV)/requirements.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# python_modules/ for Pyodide 0.28 from pyproject.toml's pins (scripts/build_bundle.py says where wheels come from).
bundle: $(BUNDLE_STAMP)

$(BUNDLE_STAMP): pyproject.toml scripts/build_bundle.py $(PY_STAMP)
	$(PY) scripts/build_bundle.py

# Build the bundle, apply D1 migrations to the remote database, then upload (see docs/operations.md).
deploy: $(BUNDLE_STAMP) $(NODE_STAMP)
	npx wrangler d1 migrations apply tattlehash-db --remote
	npx wrangler deploy

# Debian's Chromium for the proof-page browser test (the image does not ship it).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

dev: install
	$(PY) -m local.cli dev

migrate: $(PY_STAMP)
	$(PY) -m local.cli migrate

cron: $(PY_STAMP)
	$(PY) -m local.cli cron

demo: $(PY_STAMP)
	$(PY) -m local.cli demo

test: install bundle browser
	$(PY) -m ruff check $(LINT_PATHS)
	COVERAGE_MIN=80 bash scripts/test.sh

test-fast: $(PY_STAMP)
	$(PY) -m pytest -q -x -m "not slow"

lint: $(PY_STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

fmt: $(PY_STAMP)
	$(PY) -m ruff check --fix $(LINT_PATHS)
	$(PY) -m ruff format $(LINT_PATHS)

# docs/api.md from the OpenAPI document the app serves (tests/test_docs.py fails when it is stale).
docs: $(PY_STAMP)
	$(PY) scripts/api_reference.py

# The load bench (issue 8): wrk from Debian drives the server; prints req/s, p50, p99, errors, peak RSS.
bench: install
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(PY) bench/load.py
roundtrips: install ; $(PY) bench/roundtrips.py  # issue 13: each endpoint's sequential D1 round trips
# issue 18: cosmic-ray (+ scripts/mutation.py's operators) over the money, identity and signature modules, each against
# its own fast tests; prints each module's score and the surviving mutants. Slow (minutes): not part of `make test`.
mutation: $(PY_STAMP)
	nice -n 19 $(PY) scripts/mutation.py

clean:
	rm -rf $(VENV) node_modules python_modules .wrangler .pytest_cache .coverage htmlcov
