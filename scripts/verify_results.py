"""Retrain some rows of a reproduce results file with the current code and compare them.

Every field but ``seconds`` must come out identical (the training is deterministic on the CPU
with one torch thread), so this checks that a refactoring, or another machine, still gives the
results on file. For each regulariser it retrains the fastest ``ok`` row (and, for T1/T2, the
fastest one of a dropout network, which uses the second, dropout-off pass), plus one diverged
row. The configuration is the paper protocol with ``--epochs``; its hash must match the file's.

    .venv/bin/python scripts/verify_results.py results/full_mnist5k/results.csv --epochs 80
"""

from __future__ import annotations

import argparse
import csv
import sys
import time

import torch

from topo_neurons.experiments import load_task
from topo_neurons.experiments.protocol import REGULARIZERS, RunSpec, TrainConfig, train_network


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a results.csv written by topo-neurons reproduce")
    parser.add_argument("--epochs", type=int, default=1200, help="max epochs of that run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(args.results, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    config = TrainConfig(max_epochs=args.epochs)
    hashes = {r["config_hash"] for r in rows}
    if hashes != {config.config_hash()}:
        sys.exit(f"the file's configuration {hashes} is not {config.config_hash()} ({config})")
    picked = pick(rows)
    data = {}
    same = 0
    for r in picked:
        task = r["task"]
        if task not in data:
            data[task] = load_task(task, seed=config.split_seed, fractions=config.fractions)
        spec = RunSpec(task, r["model"], r["regularizer"], float(r["weight"]), int(r["seed"]),
                       r["stage"])  # fmt: skip
        start = time.perf_counter()
        _, new = train_network(spec, config, data[task])
        diff = {k: (r[k], str(new[k])) for k in r if k != "seconds" and str(new[k]) != r[k]}
        same += not diff
        verdict = "IDENTICAL" if not diff else f"DIFFERENT {diff!r}"
        print(
            f"{r['model']:18s} {r['regularizer']:11s} w={r['weight']:6s} seed={r['seed']:4s} "
            f"{r['stage']:6s} {r['status']:8s} test={r['test_metric']:6s} "
            f"epochs={r['epochs']:3s} {verdict} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(f"{same} of {len(picked)} rows identical (every field but seconds)")
    return 0 if same == len(picked) else 1


if __name__ == "__main__":
    sys.exit(main())
