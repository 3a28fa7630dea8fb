"""Retrain some rows of a reproduce results file with the current code and compare them.

Each row gets one verdict: IDENTICAL (every field but ``seconds`` and ``checksum`` equal),
WITHIN TOLERANCE (same status and metric, accuracies / R² within ``--atol``, validation loss
within ``--rtol``; epochs may differ) or DIFFERS.

When a row is identical: training is deterministic on the CPU with one torch thread (set
here), so a row comes out bit-identical on a machine of the same CPU family and instruction
set (e.g. AVX-512), with the same torch / MKL (or OpenBLAS) build, numpy and thread count as
the machine that wrote it. That is what this script checks after a refactoring.

On another machine: float rounding differs from the first step (other GEMM kernels). A run
without a topological term then usually ends within the last digits of its accuracy; a T1/T2
run can drift further, because the MST of the batch has edges tied to rounding and a flipped
tie changes that step's gradient, so its early stopping may pick another epoch. Expect WITHIN
TOLERANCE there; DIFFERS beyond the tolerances (or a changed status) is what to look into.
``docs/guarantees.md`` lists what holds where.

    .venv/bin/python scripts/verify_results.py results/full_mnist5k/results.csv --epochs 80
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time

import numpy as np
import torch

from topo_neurons.experiments import load_task
from topo_neurons.experiments.protocol import REGULARIZERS, RunSpec, TrainConfig, train_network

#: Fields that never match between two runs (wall time) or follow from the others.
IGNORED = ("seconds", "checksum")
#: Metrics compared with ``--atol`` (accuracy or R²) and the loss compared with ``--rtol``.
METRICS = ("val_metric", "test_metric")
LOSSES = ("val_loss",)
#: Fields that may differ within tolerance (the epoch early stopping picks, a divergence's text).
FREE = ("best_epoch", "epochs", "message")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def compare(
    old: dict[str, str], new: dict[str, object], atol: float, rtol: float
) -> tuple[str, dict[str, tuple[str, str]]]:
    """The verdict for a row on file (``old``) and the same run retrained (``new``).

    Returns
    -------
    verdict : {"IDENTICAL", "WITHIN TOLERANCE", "DIFFERS"}
    diff : dict
        ``field: (on file, retrained)`` for every field that is not equal.
    """
    diff = {
        k: (v, str(new.get(k, "")))
        for k, v in old.items()
        if k not in IGNORED and str(new.get(k, "")) != v
    }
    if not diff:
        return "IDENTICAL", diff
    for k, (a, b) in diff.items():
        if k in FREE:
            continue
        x, y = _number(a), _number(b)
        if k in METRICS and abs(x - y) <= atol:
            continue
        if k in LOSSES and abs(x - y) <= rtol * abs(x):
            continue
        return "DIFFERS", diff
    return "WITHIN TOLERANCE", diff


def pick(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    picked = []
    for reg in REGULARIZERS:
        ok = sorted(
            (r for r in rows if r["regularizer"] == reg and r["status"] == "ok"),
            key=lambda r: float(r["seconds"]),
        )
        picked += ok[:1]
        if reg in ("t1", "t2"):
            picked += [r for r in ok if "dropout" in r["model"]][:1]
    picked += [r for r in rows if r["status"] == "diverged"][:1]
    return picked


def environment() -> str:
    """What bit-identical rows depend on, for this machine."""
    mkl = torch.backends.mkl.is_available()
    return (
        f"torch {torch.__version__} ({'MKL' if mkl else 'no MKL'}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}), numpy {np.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", help="a results.csv written by topo-neurons reproduce")
    parser.add_argument("--epochs", type=int, default=1200, help="max epochs of that run")
    parser.add_argument(
        "--atol",
        type=float,
        default=0.01,
        help="largest difference of val/test accuracy (or R²) still within tolerance (0.01)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=0.05,
        help="largest relative difference of the validation loss within tolerance (0.05)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="fail unless every row is IDENTICAL (on the machine kind that wrote the file)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"this machine: {environment()}")
    print(
        "rows are bit-identical only where CPU family, torch/MKL build, numpy and thread "
        "count match the machine that wrote them; elsewhere expect WITHIN TOLERANCE"
    )
    with open(args.results, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    config = TrainConfig(max_epochs=args.epochs)
    hashes = {r["config_hash"] for r in rows}
    if hashes != {config.config_hash()}:
        sys.exit(f"the file's configuration {hashes} is not {config.config_hash()} ({config})")
    picked = pick(rows)
    data = {}
    counts = {"IDENTICAL": 0, "WITHIN TOLERANCE": 0, "DIFFERS": 0}
    for r in picked:
        task = r["task"]
        if task not in data:
            data[task] = load_task(task, seed=config.split_seed, fractions=config.fractions)
        spec = RunSpec(task, r["model"], r["regularizer"], float(r["weight"]), int(r["seed"]),
                       r["stage"])  # fmt: skip
        start = time.perf_counter()
        _, new = train_network(spec, config, data[task])
        verdict, diff = compare(r, new, args.atol, args.rtol)
        counts[verdict] += 1
        print(
            f"{r['model']:18s} {r['regularizer']:11s} w={r['weight']:6s} seed={r['seed']:4s} "
            f"{r['stage']:6s} {r['status']:8s} test={r['test_metric']:6s} "
            f"epochs={r['epochs']:3s} {verdict}{' ' + repr(diff) if diff else ''} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(
        f"of {len(picked)} rows: {counts['IDENTICAL']} identical (every field but seconds), "
        f"{counts['WITHIN TOLERANCE']} within tolerance (atol {args.atol:g} on the metrics, "
        f"rtol {args.rtol:g} on the loss), {counts['DIFFERS']} differ"
    )
    if args.exact:
        return 0 if counts["IDENTICAL"] == len(picked) else 1
    return 0 if counts["DIFFERS"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
