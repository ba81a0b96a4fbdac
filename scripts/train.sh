#!/usr/bin/env bash
# Install jaxrnn (with the offline task data packages) into ./.venv and run the main job:
# `jaxrnn train` (a GRU on MNIST-1D, a couple of minutes on 2 CPU cores). Extra arguments
# go to `jaxrnn train`, e.g. `bash scripts/train.sh --cell lstm --steps 3000`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[tasks]"
exec .venv/bin/jaxrnn train "$@"
