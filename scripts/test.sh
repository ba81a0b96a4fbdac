#!/usr/bin/env bash
# Install jaxrnn with its test dependencies into ./.venv and run lint + the test suite.
# This is the README's test command, and exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch==2.13.0 (CPU) is only needed for the PyTorch parity tests; it is an optional
# extra for users (pip install 'jaxrnn[torch]').
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" "torch==2.13.0"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== pytest"
set +e
.venv/bin/python -m pytest -n 2 -q "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: treating this as a failure" >&2
    exit 1
fi
exit "$status"
