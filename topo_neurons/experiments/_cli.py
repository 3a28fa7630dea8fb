"""Subcommand ``reproduce`` of ``topo-neurons``."""

from __future__ import annotations

import argparse
import math
import sys

from .data import TASKS
from .models import MODELS
from .protocol import REGULARIZERS, TrainConfig

_DESCRIPTION = """\
Reproduce the experiment of "Decorrelating neurons using persistence" (Ballester, Casacuberta
& Escalera, 2024) offline: train every network (task × model × seed) with no regulariser, L1,
L2, the correlation penalty ("minimise all correlations"), T1, T2 and DeCov at each weight of
a grid; choose each regulariser's weight per network by validation metric; report the test
metric, the average ranks, the Friedman and Nemenyi tests, a critical-difference diagram and
a barcode comparison (none vs T1 vs T2).

Default (full): digits; trapezium, trapezium_dropout, deep_trapezium; 5 seeds; grid 1e-6 …
100 (9 weights); at most 60 epochs, patience 10: 825 runs. --quick: digits, trapezium,
3 seeds, grid 1e-5, 1e-4, 1e-3, 1e-1, 1; at most 40 epochs: 93 runs. Explicit options
override either. Runs already in OUT/results.csv (same configuration) are skipped, so an
interrupted command resumes where it stopped.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand to ``sub``."""
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's experiment (sweep, table, CD diagram, barcodes)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="the quick configuration (minutes)")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help=f"tasks: {', '.join(TASKS)}")
    p.add_argument("--models", nargs="+", metavar="MODEL", help=f"models: {', '.join(MODELS)}")
    p.add_argument(
        "--regularizers",
        nargs="+",
        metavar="REG",
        help=f"regularisers (default all): {', '.join(REGULARIZERS)}",
    )
    p.add_argument("--seeds", type=int, metavar="N", help="number of seeds (0 … N−1)")
    p.add_argument("--grid", nargs="+", type=float, metavar="W", help="weights λ to try")
    p.add_argument("--epochs", type=int, metavar="N", help="maximum epochs per run")
    p.add_argument("--patience", type=int, metavar="N", help="early-stopping patience (epochs)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=256, help="largest batch (default 256)")
    p.add_argument(
        "--kind", choices=("abs", "sqrt"), default="abs", help="dissimilarity (default abs)"
    )
    p.add_argument(
        "--t1-reduction",
        choices=("sum", "mean"),
        default="sum",
        help="T1 reduction (default sum, as the paper)",
    )
    p.add_argument(
        "--sampling-p",
        type=float,
        default=1.0,
        help="fraction of each hidden layer's neurons the activation terms see (default 1.0)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel processes")
    p.add_argument("--data-dir", help="directory with MNIST (IDX) or CIFAR-10 (python) files")
    p.add_argument("--out", default="results/reproduce", help="output directory")
    p.add_argument("--no-barcodes", action="store_true", help="skip the barcode comparison figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``topo-neurons reproduce`` from parsed arguments; returns the exit status."""
    from .reproduction import FULL, QUICK, reproduce

    preset = QUICK if args.quick else FULL
    seeds = preset.seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {args.jobs}")
    grid = tuple(preset.grid if args.grid is None else args.grid)
    bad = [w for w in grid if not (w > 0 and math.isfinite(w))]
    if bad:
        raise ValueError(f"--grid weights must be positive and finite; got {bad}")
    config = TrainConfig(
        max_epochs=preset.max_epochs if args.epochs is None else args.epochs,
        patience=preset.patience if args.patience is None else args.patience,
        lr=args.lr,
        batch_size=args.batch_size,
        kind=args.kind,
        t1_reduction=args.t1_reduction,
        sampling_p=args.sampling_p,
        data_dir=args.data_dir,
    )
    result = reproduce(
        args.out,
        tasks=args.tasks or preset.tasks,
        models=args.models or preset.models,
        regularizers=args.regularizers or preset.regularizers,
        seeds=seeds,
        grid=grid,
        config=config,
        jobs=args.jobs,
        progress=not args.no_progress,
        barcodes=not args.no_barcodes,
    )
    print(
        f"{result.ran} run(s) trained, {result.skipped} already finished, "
        f"{result.seconds / 60:.1f} min; wrote:",
        file=sys.stdout,
    )
    for path in result.files.values():
        print(f"  {path}")
    return 0
