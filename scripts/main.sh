#!/usr/bin/env bash
# The main job: set up, then reproduce the paper's experiment in its quick configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
MPLBACKEND=Agg .venv/bin/topo-neurons reproduce --quick --out results/quick "$@"
