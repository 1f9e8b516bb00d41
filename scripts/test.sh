#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then lint and tests.
# Exits non-zero on any failure, and also when pytest collected no test at all (exit code 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test  # the test bed: browser, CJK font, VictoriaMetrics, test extras

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== layers point down (import-linter, docs/architecture.md)"
.venv/bin/lint-imports

echo "== mypy"
.venv/bin/mypy ground config rules drivers  # the ground and core packages, strict

echo "== docs/equipment up to date"
.venv/bin/python -m simulators.docgen --check

echo "== pytest"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
