#!/usr/bin/env bash
# Run the whole test suite with coverage; exit non-zero on any failure (pytest's "no tests" exit 5 included).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
rm -f .coverage .coverage.*
"$PY" -m coverage run -m pytest -q -p no:cacheprovider "$@"
"$PY" -m coverage combine -q 2>/dev/null || true
"$PY" -m coverage report --fail-under="${COVERAGE_MIN:-0}" | tail -3
