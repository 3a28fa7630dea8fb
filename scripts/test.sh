#!/usr/bin/env bash
# The test command: set up, lint, run the tests (which also execute the notebooks and build the
# docs in strict mode).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check topo_neurons tests benchmarks examples
.venv/bin/ruff format --check topo_neurons tests benchmarks examples
MPLBACKEND=Agg .venv/bin/python -m pytest -q "$@"
