#!/usr/bin/env bash
# Create .venv and install topo_neurons with the pinned CI versions (CPU torch from this disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so that no range ever pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q -c requirements/ci.txt torch==2.13.0
.venv/bin/python -m pip install -q -c requirements/ci.txt -e ".[dev]"
