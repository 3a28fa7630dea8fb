#!/usr/bin/env bash
# The GPU session's check, in one command: the CUDA tests, then benchmarks/gpu.py, with every
# output kept in one folder (the first argument; default gpu_check/<UTC time>/).
#
#   bash scripts/gpu_check.sh "$OUT"          # both, about 8 minutes on one H100
#   bash scripts/gpu_check.sh "$OUT" tests    # the CUDA tests only (about 2 minutes)
#   bash scripts/gpu_check.sh "$OUT" bench    # the benchmark only
#
# Writes: env.txt (nvidia-smi, torch and the card, the commit), tests.txt (pytest -m cuda, with
# the reasons of any skip), gpu.md and gpu.json (the benchmark's tables, saved after each
# table, so a run cut short keeps what it measured), bench.txt (its output). Time limits
# (seconds, environment): TESTS_TIMEOUT (default 150) and BENCH_TIMEOUT (default 420): both
# fit one 10-minute command. The CUDA tests must not be skipped: the script stops (exit 2) if
# torch sees no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-gpu_check/$(date -u +%Y%m%dT%H%M%SZ)}
WHAT=${2:-all}
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
tests_rc=0
bench_rc=0
if [ "$WHAT" = all ] || [ "$WHAT" = tests ]; then
    MPLBACKEND=Agg timeout "${TESTS_TIMEOUT:-150}" "$PY" -m pytest -q -p no:cacheprovider -rs \
        -m cuda tests >"$OUT/tests.txt" 2>&1
    tests_rc=$?
    tail -n 5 "$OUT/tests.txt"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = bench ]; then
    timeout "${BENCH_TIMEOUT:-420}" "$PY" benchmarks/gpu.py --out "$OUT" >"$OUT/bench.txt" 2>&1
    bench_rc=$?
    cat "$OUT/gpu.md" 2>/dev/null || tail -n 30 "$OUT/bench.txt"
fi
echo "tests: exit $tests_rc; benchmark: exit $bench_rc; outputs in $OUT" | tee -a "$OUT/env.txt"
exit $((tests_rc != 0 || bench_rc != 0))
