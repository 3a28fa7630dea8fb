#!/usr/bin/env bash
# The GPU session's check, in one command: the CUDA tests, then benchmarks/gpu.py, with every
# output kept in one folder (default gpu_check/<UTC time>/, or the first argument).
#
#   bash scripts/gpu_check.sh                 # on a machine with a CUDA GPU
#   bash scripts/gpu_check.sh /tmp/out        # the folder of your choice
#
# Writes: env.txt (nvidia-smi, torch and the card), tests.txt (pytest -m cuda, with the
# reasons of any skip), gpu.md and gpu.json (the benchmark's tables), bench.txt (its output).
# The CUDA tests must not be skipped here: the script stops if torch sees no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "torch sees no CUDA device: nothing to check here" | tee "$OUT/env.txt"
    exit 2
fi
{
    date -u
    nvidia-smi || true
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
    git rev-parse HEAD 2>/dev/null || true
} >"$OUT/env.txt" 2>&1
MPLBACKEND=Agg timeout 900 "$PY" -m pytest -q -p no:cacheprovider -rs -m cuda tests \
    >"$OUT/tests.txt" 2>&1
tests_rc=$?
timeout 900 "$PY" benchmarks/gpu.py --out "$OUT" >"$OUT/bench.txt" 2>&1
bench_rc=$?
echo "tests: exit $tests_rc; benchmark: exit $bench_rc; outputs in $OUT" | tee -a "$OUT/env.txt"
tail -n 3 "$OUT/tests.txt"
cat "$OUT/gpu.md" 2>/dev/null || tail -n 30 "$OUT/bench.txt"
exit $((tests_rc != 0 || bench_rc != 0))
