"""``topo-neurons reproduce``: sweep, weight selection, table, statistics and figures.

:func:`reproduce` runs (or resumes) the sweep of :mod:`~topo_neurons.experiments.protocol`
and writes into one directory:

* ``results.csv``: every run (see :data:`~topo_neurons.experiments.protocol.RESULT_FIELDS`);
* ``results.md``: the protocol, the test metric (mean ± std over seeds) of each regulariser at
  the weight chosen per network by validation accuracy (the paper's selection), the chosen
  weights, the same weights retrained from fresh seeds (an estimate the selection does not
  inflate, beside "none" retrained as often), the test metric of every weight, the diverged
  runs, the average ranks with the Friedman / Iman–Davenport tests and the Nemenyi critical
  difference;
* ``cd_diagram.pdf`` / ``.png``: the critical-difference diagram of the regularisers;
* ``barcodes.pdf`` / ``.png``: the 0-dimensional barcodes of one network trained with no
  regulariser, T1 and T2 (each at its chosen weight) on the test set, as sorted-death profiles
  on a shared axis, and their death distributions.

PDFs embed TrueType (Type 42) fonts.

The analysis half (:func:`select_best`, :func:`summarize`, :func:`markdown_report`) works on
any results file, so a notebook can rebuild the table and figures from a committed CSV.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io import atomic_path, atomic_write_text
from .protocol import (
    PAPER_GRID,
    REFIT_SEED_OFFSET,
    REGULARIZER_LABELS,
    REGULARIZERS,
    RunSpec,
    TrainConfig,
    _dataset_for,
    format_weight,
    plan_runs,
    read_results,
    run_sweep,
    train_network,
)
from .stats import critical_difference, friedman_test, plot_cd_diagram

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "ADAM_FULL",
    "ADAM_QUICK",
    "FULL",
    "PRESETS",
    "QUICK",
    "Preset",
    "ReproduceResult",
    "Summary",
    "layer_display_names",
    "markdown_report",
    "plot_barcode_comparison",
    "plot_barcode_profiles",
    "refit_specs",
    "reproduce",
    "select_best",
    "summarize",
]


@dataclass(frozen=True)
class Preset:
    """A named configuration of ``reproduce``.

    Attributes
    ----------
    tasks, models, regularizers : tuple of str
    seeds : int
        Number of seeds (``0 … seeds − 1``).
    grid : tuple of float
        Weights λ tried for every regulariser but ``none``.
    max_epochs, patience : int
    protocol : {"paper", "adam"}
        Training recipe (:attr:`TrainConfig.protocol`).
    refits : int
        Fresh-seed retrainings of each chosen weight (and of ``none``) per network.
    """

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    regularizers: tuple[str, ...]
    seeds: int
    grid: tuple[float, ...]
    max_epochs: int
    patience: int
    protocol: str = "paper"
    refits: int = 1


#: The default (full) configuration, the paper's protocol on mnist5k: the three MLPs, 3 seeds,
#: the paper's 10 weights, at most 1200 epochs, patience 20 (9 × 61 = 549 runs + 63 refits).
FULL = Preset(
    tasks=("mnist5k",),
    models=("trapezium", "trapezium_dropout", "deep_trapezium"),
    regularizers=REGULARIZERS,
    seeds=3,
    grid=PAPER_GRID,
    max_epochs=1200,
    patience=20,
)
#: ``--quick``: the paper's protocol on mnist5k, one MLP, 2 seeds, three weights, at most
#: 20 epochs (2 × 19 = 38 runs + 14 refits); a smoke test of minutes, not a result.
QUICK = Preset(
    tasks=("mnist5k",),
    models=("trapezium",),
    regularizers=REGULARIZERS,
    seeds=2,
    grid=(1e-4, 1e-2, 1.0),
    max_epochs=20,
    patience=20,
)
#: ``--protocol adam``: the package's earlier recipe on scikit-learn's digits (825 runs).
ADAM_FULL = Preset(
    tasks=("digits",),
    models=("trapezium", "trapezium_dropout", "deep_trapezium"),
    regularizers=REGULARIZERS,
    seeds=5,
    grid=PAPER_GRID,
    max_epochs=60,
    patience=10,
    protocol="adam",
)
#: ``--protocol adam --quick``: digits, one MLP, 3 seeds, five weights, at most 40 epochs.
ADAM_QUICK = Preset(
    tasks=("digits",),
    models=("trapezium",),
    regularizers=REGULARIZERS,
    seeds=3,
    grid=(1e-5, 1e-4, 1e-3, 1e-1, 1.0),
    max_epochs=40,
    patience=10,
    protocol="adam",
)
#: ``{(protocol, quick): preset}``.
PRESETS: dict[tuple[str, bool], Preset] = {
    ("paper", False): FULL,
    ("paper", True): QUICK,
    ("adam", False): ADAM_FULL,
    ("adam", True): ADAM_QUICK,
}


def _f(x: object) -> float:
    return float(x) if x not in ("", None) else math.nan


def select_best(rows: Sequence[dict]) -> dict[tuple[str, str, int], dict[str, dict]]:
    """Choose each regulariser's weight per network by validation metric (the paper's rule).

    Per network (task, model, seed) and regulariser, the finished (``status == "ok"``) row with
    the highest validation metric wins; ties go to the smaller weight. Diverged runs are never
    chosen; refit rows (``stage == "refit"``) are not candidates.

    Parameters
    ----------
    rows : sequence of dict
        Rows of a results file (one configuration).

    Returns
    -------
    dict
        ``{(task, model, seed): {regularizer: row}}``; a regulariser all of whose runs on a
        network diverged is absent from that network's dict.
    """
    best: dict[tuple[str, str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r.get("stage", "select") != "select":
            continue
        net = (str(r["task"]), str(r["model"]), int(r["seed"]))
        best.setdefault(net, {})
        if r["status"] != "ok":
            continue
        key = (-_f(r["val_metric"]), _f(r["weight"]))
        cur = best[net].get(r["regularizer"])
        if cur is None or key < (-_f(cur["val_metric"]), _f(cur["weight"])):
            best[net][r["regularizer"]] = r
    return dict(best)


@dataclass
class Summary:
    """Everything the report says, computed from a results file.

    Attributes
    ----------
    regularizers : list of str
        Columns, in :data:`REGULARIZERS` order.
    networks : list of (task, model, seed)
        Every network in the results.
    complete : list of (task, model, seed)
        Networks where every regulariser has a chosen run (the Friedman blocks).
    scores : numpy.ndarray, shape (len(complete), len(regularizers))
        Test metric at the chosen weight.
    average_ranks : numpy.ndarray, shape (len(regularizers),) or None
    friedman : FriedmanResult or None
        ``None`` with fewer than 2 complete networks.
    cd : float or None
        Nemenyi critical difference at α = 0.05.
    best : dict
        Output of :func:`select_best`.
    diverged : Counter
        Diverged runs per (regularizer, weight).
    refit : dict
        ``{(task, model, seed): {regularizer: [test metric of each finished refit]}}``: the
        chosen weight (``λ = 0`` for ``none``) retrained from fresh seeds.
    refit_complete : list of (task, model, seed)
        Networks where every regulariser has at least one finished refit.
    refit_scores : numpy.ndarray, shape (len(refit_complete), len(regularizers))
        Mean refit test metric per network and regulariser.
    refit_ranks : numpy.ndarray or None
        Average ranks of ``refit_scores``.
    """

    regularizers: list[str]
    networks: list[tuple[str, str, int]]
    complete: list[tuple[str, str, int]]
    scores: np.ndarray
    average_ranks: np.ndarray | None
    friedman: object | None
    cd: float | None
    best: dict = field(repr=False)
    diverged: Counter = field(default_factory=Counter)
    refit: dict = field(default_factory=dict, repr=False)
    refit_complete: list = field(default_factory=list)
    refit_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    refit_ranks: np.ndarray | None = None


def summarize(rows: Sequence[dict], alpha: float = 0.05) -> Summary:
    """Weight selection, scores per network and the Friedman / Nemenyi statistics.

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration (e.g. :func:`~topo_neurons.experiments.protocol.read_results`
        filtered by ``config_hash``).
    alpha : float
        Significance level of the critical difference.

    Returns
    -------
    Summary
    """
    if not rows:
        raise ValueError("no results to summarise (the results file has no rows)")
    hashes = sorted({str(r["config_hash"]) for r in rows})
    if len(hashes) > 1:
        raise ValueError(
            f"rows of {len(hashes)} configurations ({', '.join(hashes)}) cannot be summarised "
            "together; filter by config_hash first"
        )
    refit_rows = [r for r in rows if r.get("stage", "select") == "refit"]
    rows = [r for r in rows if r.get("stage", "select") == "select"]
    if not rows:
        raise ValueError("no sweep (stage 'select') rows to summarise; refits alone cannot be")
    present = {str(r["regularizer"]) for r in rows}
    regs = [r for r in REGULARIZERS if r in present]
    best = select_best(rows)
    networks = sorted(best)
    complete = [n for n in networks if all(r in best[n] for r in regs)]
    scores = np.array(
        [[_f(best[n][r]["test_metric"]) for r in regs] for n in complete], dtype=np.float64
    ).reshape(len(complete), len(regs))
    friedman = avg = cd = None
    if len(complete) >= 1 and len(regs) >= 2:
        from .stats import average_ranks as _avg

        avg = _avg(scores)
        if len(complete) >= 2:
            friedman = friedman_test(scores)
            cd = critical_difference(len(regs), len(complete), alpha)
    diverged = Counter(
        (str(r["regularizer"]), format_weight(_f(r["weight"])))
        for r in rows
        if r["status"] == "diverged"
    )
    refit: dict = defaultdict(lambda: defaultdict(list))
    for r in refit_rows:
        net = (str(r["task"]), str(r["model"]), int(r["seed"]) % REFIT_SEED_OFFSET)
        chosen = best.get(net, {}).get(str(r["regularizer"]))
        # only refits of the weight chosen now count (a rerun with more weights may choose anew)
        if chosen is None or format_weight(_f(chosen["weight"])) != format_weight(_f(r["weight"])):
            continue
        if r["status"] == "ok":
            refit[net][str(r["regularizer"])].append(_f(r["test_metric"]))
    refit = {n: dict(v) for n, v in refit.items()}
    refit_complete = [n for n in networks if all(refit.get(n, {}).get(r) for r in regs)]
    refit_scores = np.array(
        [[np.mean(refit[n][r]) for r in regs] for n in refit_complete], dtype=np.float64
    ).reshape(len(refit_complete), len(regs))
    refit_ranks = None
    if refit_complete and len(regs) >= 2:
        from .stats import average_ranks as _avg

        refit_ranks = _avg(refit_scores)
    return Summary(
        regs,
        networks,
        complete,
        scores,
        avg,
        friedman,
        cd,
        best,
        diverged,
        refit,
        refit_complete,
        refit_scores,
        refit_ranks,
    )


def refit_specs(rows: Sequence[dict], refits: int = 1) -> list[RunSpec]:
    """Runs that retrain each chosen weight (and ``none``) from ``refits`` fresh seeds.

    The paper's selection reports, for each regulariser, the best validation accuracy of
    ten trained networks (one per weight) while ``none`` gets one, and the validation set
    also drives early stopping: the selected test accuracy may be inflated. Retraining the
    chosen weight from a seed that took no part in the choice (and ``none`` as often) gives an
    estimate the choice does not inflate. Refit ``k`` (``0 … refits − 1``) of network seed
    ``s`` trains from seed ``s + (k + 1) · REFIT_SEED_OFFSET``.

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration (sweep rows choose the weights).
    refits : int
        Fresh seeds per chosen weight.

    Returns
    -------
    list of RunSpec
        ``stage="refit"`` specs, network by network.
    """
    if not isinstance(refits, (int, np.integer)) or refits < 0:
        raise ValueError(f"refits must be a non-negative int; got {refits!r}")
    best = select_best(rows)
    specs = []
    for (task, model, seed), chosen in sorted(best.items()):
        for reg in REGULARIZERS:
            if reg not in chosen:
                continue
            w = _f(chosen[reg]["weight"])
            for k in range(int(refits)):
                fresh = seed + (k + 1) * REFIT_SEED_OFFSET
                specs.append(RunSpec(task, model, reg, w, fresh, stage="refit"))
    return specs


def _fmt_w(w: str | float) -> str:
    x = _f(w)
    if x == 0:
        return "–"
    if x >= 1:
        return f"{x:g}"
    return f"{x:.0e}".replace("e-0", "e-")


def markdown_report(rows: Sequence[dict], summary: Summary | None = None) -> str:
    """The Markdown report of a results file (what ``results.md`` holds).

    Parameters
    ----------
    rows : sequence of dict
        Rows of one configuration.
    summary : Summary, optional
        Precomputed :func:`summarize` of ``rows``.

    Returns
    -------
    str
    """
    s = summary if summary is not None else summarize(rows)
    all_rows = rows
    rows = [r for r in rows if r.get("stage", "select") == "select"]
    labels = [REGULARIZER_LABELS[r] for r in s.regularizers]
    metrics = sorted({str(r["metric"]) for r in rows})
    metric = metrics[0] if len(metrics) == 1 else "metric (" + " / ".join(metrics) + " by task)"
    groups = sorted({(t, m) for t, m, _ in s.networks})
    lines = [
        f"Test {metric} at the weight chosen per network by validation {metric} "
        "(mean ± std over seeds, population std; n = number of seeds; `k missing`: on k "
        "networks every run of that regulariser diverged or is not finished yet).",
        "",
        "| task / model | n | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for t, m in groups:
        nets = [n for n in s.networks if n[:2] == (t, m)]
        cells = []
        for r in s.regularizers:
            vals = np.array([_f(s.best[n][r]["test_metric"]) for n in nets if r in s.best[n]])
            if len(vals) == 0:
                cells.append("diverged")
                continue
            cell = f"{vals.mean():.4f} ± {vals.std():.4f}"
            if len(vals) < len(nets):
                cell += f" ({len(nets) - len(vals)} missing)"
            cells.append(cell)
        lines.append(f"| {t} / {m} | {len(nets)} | " + " | ".join(cells) + " |")
    if s.average_ranks is not None:
        best_col = int(np.argmin(s.average_ranks))
        ranks = [
            (f"**{v:.2f}**" if i == best_col else f"{v:.2f}") for i, v in enumerate(s.average_ranks)
        ]
        lines.append(f"| average rank (1 = best) | {len(s.complete)} | " + " | ".join(ranks) + " |")
    lines += ["", "Chosen weight λ per network (count of seeds):", ""]
    lines += ["| task / model | " + " | ".join(labels[1:] if labels[0] == "none" else labels)]
    regs_w = [r for r in s.regularizers if r != "none"]
    lines[-1] += " |"
    lines.append("|---|" + "---|" * len(regs_w))
    for t, m in groups:
        nets = [n for n in s.networks if n[:2] == (t, m)]
        cells = []
        for r in regs_w:
            c = Counter(format_weight(_f(s.best[n][r]["weight"])) for n in nets if r in s.best[n])
            cells.append(
                ", ".join(
                    f"{_fmt_w(w)} ({k})" for w, k in sorted(c.items(), key=lambda x: _f(x[0]))
                )
                or "–"
            )
        lines.append(f"| {t} / {m} | " + " | ".join(cells) + " |")

    if s.friedman is not None:
        fr = s.friedman
        k, n = fr.n_methods, fr.n_datasets
        lines += [
            "",
            f"Friedman test over N = {n} networks and k = {k} regularisers: "
            f"χ²_F = {fr.chi2:.3f} (p = {fr.chi2_pvalue:.3g}); Iman–Davenport "
            f"F_F = {fr.f:.3f} (p = {fr.f_pvalue:.3g}, df = {k - 1}, {(k - 1) * (n - 1)}). "
            f"Nemenyi critical difference at α = 0.05: CD = {s.cd:.3f}.",
        ]
    elif s.average_ranks is not None:
        lines += ["", "One network only: no Friedman test (it needs at least two)."]
    lines += _refit_section(s, metric)
    incomplete = [n for n in s.networks if n not in s.complete]
    if incomplete:
        lines += [
            "",
            "Networks left out of the ranking because some regulariser has no finished, "
            "non-diverged run on them: "
            + ", ".join(f"{t}/{m}/seed {sd}" for t, m, sd in incomplete)
            + ".",
        ]

    # every weight: mean test metric over seeds (diverged runs counted separately)
    weights = sorted(
        {format_weight(_f(r["weight"])) for r in rows if r["regularizer"] != "none"}, key=float
    )
    if weights:
        lines += [
            "",
            f"Mean test {metric} of every weight (all networks; `div k/n`: k of n runs diverged):",
            "",
            "| regulariser | " + " | ".join(_fmt_w(w) for w in weights) + " |",
            "|---|" + "---|" * len(weights),
        ]
        by = defaultdict(list)
        for r in rows:
            by[(r["regularizer"], format_weight(_f(r["weight"])))].append(r)
        for r in regs_w:
            cells = []
            for w in weights:
                rs = by.get((r, w), [])
                ok = [_f(x["test_metric"]) for x in rs if x["status"] == "ok"]
                cell = f"{np.mean(ok):.3f}" if ok else ""
                nd = len(rs) - len(ok)
                if nd:
                    cell = (cell + " " if cell else "") + f"div {nd}/{len(rs)}"
                cells.append(cell or "–")
            lines.append(f"| {REGULARIZER_LABELS[r]} | " + " | ".join(cells) + " |")
    n_div = sum(s.diverged.values())
    n_refit = len(all_rows) - len(rows)
    lines += ["", f"Runs: {len(rows)} in the sweep ({n_div} diverged), {n_refit} refit(s)."]
    return "\n".join(lines) + "\n"


def _refit_section(s: Summary, metric: str) -> list[str]:
    """The unbiased estimate beside the paper's selection, and whether the two agree."""
    if not s.refit_complete:
        return []
    nets = s.refit_complete
    regs = s.regularizers
    sel = np.array([[_f(s.best[n][r]["test_metric"]) for r in regs] for n in nets])
    fresh = s.refit_scores
    lines = [
        "",
        f"Selection-free estimate: the weight chosen on each network retrained from fresh "
        f"seed(s), `none` retrained as often; test {metric} (mean ± std over the {len(nets)} "
        "networks with every refit finished) beside the paper's selected value on the same "
        "networks, and each regulariser's difference to `none`:",
        "",
        "| estimate | " + " | ".join(REGULARIZER_LABELS[r] for r in regs) + " |",
        "|---|" + "---|" * len(regs),
        "| paper's selection (best of the grid by validation) | "
        + " | ".join(f"{c.mean():.4f} ± {c.std():.4f}" for c in sel.T)
        + " |",
        "| chosen weight, fresh seed(s) | "
        + " | ".join(f"{c.mean():.4f} ± {c.std():.4f}" for c in fresh.T)
        + " |",
    ]
    if "none" in regs:
        i0 = regs.index("none")
        d_sel = sel - sel[:, [i0]]
        d_fresh = fresh - fresh[:, [i0]]
        lines.append(
            "| difference to none, selection | "
            + " | ".join(f"{d.mean():+.4f}" for d in d_sel.T)
            + " |"
        )
        lines.append(
            "| difference to none, fresh seed(s) | "
            + " | ".join(f"{d.mean():+.4f}" for d in d_fresh.T)
            + " |"
        )
        verdicts = []
        for j, r in enumerate(regs):
            if j == i0:
                continue
            a, b = d_sel[:, j].mean(), d_fresh[:, j].mean()
            same = np.sign(a) == np.sign(b)
            verdicts.append(
                f"{REGULARIZER_LABELS[r]} {'agree' if same else 'DISAGREE'} ({a:+.4f} vs {b:+.4f})"
            )
        lines += [
            "",
            "Do the two estimates agree on the sign of the difference to none? "
            + "; ".join(verdicts)
            + ". Mean inflation of the selected value over the fresh one (selection − fresh, "
            "regularisers other than none): "
            + f"{np.mean(np.delete(sel - fresh, i0, axis=1)):+.4f}.",
        ]
    if s.refit_ranks is not None:
        lines += [
            "",
            "Average ranks of the fresh-seed estimate (1 = best): "
            + ", ".join(f"{REGULARIZER_LABELS[r]} {v:.2f}" for r, v in zip(regs, s.refit_ranks))
            + ".",
        ]
    return lines


def layer_display_names(model) -> dict[str, str]:
    """Names a reader knows for the recorded layers: ``hidden 1 (450)`` …, ``logits (10)``.

    Parameters
    ----------
    model : torch.nn.Module
        A model of :func:`~topo_neurons.experiments.models.make_model`.

    Returns
    -------
    dict
        ``{module name: display name}`` for :func:`~topo_neurons.experiments.models.neuron_layers`.
    """
    from .models import neuron_layers

    names = neuron_layers(model)
    modules = dict(model.named_modules())
    out = {}
    hidden = 0
    for i, name in enumerate(names):
        if i == len(names) - 1:
            out[name] = f"logits ({modules[name].out_features})"
        else:
            hidden += 1
            prev = [m for n, m in modules.items() if hasattr(m, "weight") and n < name]
            width = ""
            lin = [m for n, m in model.named_modules() if n == name.replace("relu", "fc")]
            if lin and hasattr(lin[0], "out_features"):
                width = f" ({lin[0].out_features})"
            elif prev and hasattr(prev[-1], "out_channels"):
                width = f" ({prev[-1].out_channels} ch)"
            out[name] = f"hidden {hidden}{width}"
    return out


def plot_barcode_profiles(
    barcodes: dict[str, tuple],
    *,
    axes=None,
    titles: dict[str, str] | None = None,
):
    """Barcodes of ~1000 bars drawn readably: sorted deaths as filled profiles, shared axis.

    Each panel draws one barcode's bars sorted by death (longest at the top), each bar a
    full-height horizontal strip, so the bars form a filled profile whose outline is the sorted
    deaths; a bar is coloured by the layer whose two neurons its MST edge joins (grey: between
    layers). All panels share the death axis ``[0, max death]`` and the last panel overlays
    the death distributions (ECDF) on the same axis.

    Parameters
    ----------
    barcodes : dict
        ``{label: (Barcode, layer name of each point)}`` in panel order.
    axes : sequence of matplotlib Axes, optional
        ``len(barcodes) + 1`` axes sharing x; a new figure when ``None``.
    titles : dict, optional
        ``{label: panel title}``.

    Returns
    -------
    list of matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(
            1,
            len(barcodes) + 1,
            figsize=(3.4 * (len(barcodes) + 1), 3.6),
            sharex=True,
            constrained_layout=True,
        )
    axes = list(axes)
    if len(axes) != len(barcodes) + 1:
        raise ValueError(
            f"need {len(barcodes) + 1} axes for {len(barcodes)} barcodes; got {len(axes)}"
        )
    layer_order: list[str] = []
    for _, layers in barcodes.values():
        for name in layers:
            if name not in layer_order:
                layer_order.append(name)
    cmap = plt.get_cmap("tab10")
    colours = {name: cmap(i % 10) for i, name in enumerate(layer_order)}
    between = (0.6, 0.6, 0.6, 1.0)
    x_max = max(float(np.max(bc.deaths)) if len(bc.deaths) else 0.0 for bc, _ in barcodes.values())
    x_max = x_max * 1.03 if x_max > 0 else 1.0
    for ax, (label, (bc, layers)) in zip(axes, barcodes.items()):
        layers = np.asarray(layers)
        order = np.argsort(bc.deaths, kind="stable")
        deaths = np.asarray(bc.deaths)[order]
        e = np.asarray(bc.edges)[order]
        li, lj = layers[e[:, 0]], layers[e[:, 1]]
        cols = [colours[a] if a == b else between for a, b in zip(li, lj)]
        ax.barh(np.arange(len(deaths)), deaths, height=1.0, color=cols, linewidth=0)
        ax.set_ylim(-0.5, max(len(deaths), 1) - 0.5)
        ax.set_xlim(0, x_max)
        ax.set_xlabel("death (1 − |ρ|)")
        ax.set_ylabel(f"{len(deaths)} bars, sorted by death")
        ax.set_title((titles or {}).get(label, label), fontsize=9)
    from matplotlib.patches import Patch

    handles = [Patch(color=colours[n], label=n) for n in layer_order]
    handles.append(Patch(color=between, label="between layers"))
    axes[0].legend(
        handles=handles, fontsize=7, loc="lower right", title="MST edge within", title_fontsize=7
    )
    ecdf = axes[-1]
    for label, (bc, _) in barcodes.items():
        d = np.sort(np.asarray(bc.deaths))
        ecdf.step(d, np.arange(1, len(d) + 1) / max(len(d), 1), where="post", label=label)
    ecdf.set_xlim(0, x_max)
    ecdf.set_ylim(0, 1.0)
    ecdf.set_xlabel("death (1 − |ρ|)")
    ecdf.set_ylabel("fraction of bars with death ≤ x")
    ecdf.set_title("death distributions (ECDF)", fontsize=9)
    ecdf.legend(fontsize=7, loc="lower right")
    return axes


def plot_barcode_comparison(
    spec: RunSpec,
    weights: dict[str, float],
    config: TrainConfig,
    *,
    dataset=None,
) -> Figure:
    """Barcodes of one network trained with no regulariser, T1 and T2, side by side.

    Each network is retrained by the protocol (same seed, so the same run as in the sweep),
    its neurons (each hidden layer after its ReLU, and the logits) are recorded on the training
    set (no gradient; more examples than neurons, unlike mnist5k's 1000 test images), and the
    0-dimensional persistence of ``1 − |ρ|`` (``config.kind``) is drawn
    by :func:`plot_barcode_profiles`: sorted deaths as filled profiles on a shared axis, bars
    coloured by layer (``hidden 1 (450)`` … ``logits (10)``), then the death distributions.

    Parameters
    ----------
    spec : RunSpec
        The network (task, model, seed); its regulariser and weight are ignored.
    weights : dict
        ``{"t1": λ1, "t2": λ2}``: the weights to train T1 and T2 with.
    config : TrainConfig
    dataset : Dataset, optional

    Returns
    -------
    matplotlib.figure.Figure
        Four panels sharing the death axis: none, T1, T2, death distributions (ECDF).
    """
    import matplotlib.pyplot as plt
    import torch

    from .. import ActivationRecorder, correlation_dissimilarity, zero_persistence
    from .data import load_task
    from .models import neuron_layers

    if dataset is None:
        dataset = load_task(
            spec.task, seed=config.split_seed, fractions=config.fractions, data_dir=config.data_dir
        )
    runs = [("none", 0.0), ("t1", float(weights["t1"])), ("t2", float(weights["t2"]))]
    barcodes: dict[str, tuple] = {}
    titles: dict[str, str] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for reg, w in runs:
            run = RunSpec(spec.task, spec.model, reg, w, spec.seed)
            model, row = train_network(run, config, dataset)
            names = layer_display_names(model)
            layers = neuron_layers(model)
            with ActivationRecorder(model, layers=layers, detach=True, positions="neurons") as rec:
                with torch.no_grad():
                    model(torch.from_numpy(dataset.X_train))
            A = rec.activations()
            index = rec.neuron_index()
            layers = [names.get(n, n) for n in np.asarray(index.layers)[index.layer]]
            bc = zero_persistence(correlation_dissimilarity(A.double(), kind=config.kind))
            label = "none" if reg == "none" else f"{REGULARIZER_LABELS[reg]} (λ = {_fmt_w(w)})"
            barcodes[label] = (bc, layers)
            titles[label] = f"{label}: test {row['metric']} {_f(row['test_metric']):.3f}"
    finally:
        torch.set_num_threads(threads)
    fig, axes = plt.subplots(1, 4, figsize=(14.0, 3.9), sharex=True, constrained_layout=True)
    plot_barcode_profiles(barcodes, axes=axes, titles=titles)
    fig.suptitle(
        f"{spec.task} / {spec.model} / seed {spec.seed}: 0-dim persistence of the neurons "
        f"(hidden layers after ReLU, and logits) on the {len(dataset.y_train)} training "
        "examples",
        fontsize=10,
    )
    return fig


def _save(fig: Figure, path_stem: Path) -> list[Path]:
    """Write ``fig`` as PDF (TrueType / Type 42 fonts embedded) and PNG, atomically."""
    import matplotlib

    out = []
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        for ext in (".pdf", ".png"):
            target = path_stem.with_suffix(ext)
            with atomic_path(target) as tmp:
                fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext[1:])
            out.append(target)
    return out


def _git_commit() -> str:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


@dataclass
class ReproduceResult:
    """What :func:`reproduce` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
    files : dict of str → pathlib.Path
        ``results``, ``report``, ``cd_diagram`` (PDF), ``cd_diagram_png``, ``barcodes``,
        ``barcodes_png`` (the figures only when they could be made).
    summary : Summary
    ran, skipped : int
        Runs trained now, and runs found already finished.
    seconds : float
        Wall time of the call.
    """

    out_dir: Path
    files: dict[str, Path]
    summary: Summary
    ran: int
    skipped: int
    seconds: float


def _protocol_text(config: TrainConfig) -> str:
    if config.protocol == "paper":
        return (
            f"Protocol **paper** (the authors' code): SGD, Nesterov momentum {config.momentum:g}, "
            f"lr {config.lr:g} × {config.lr_decay:g} every {config.lr_decay_steps} steps, batch "
            f"{config.batch_size}, at most {config.max_epochs} epochs, early stopping on the "
            f"validation loss (patience {config.patience}, best weights restored), Keras "
            "initialisation, L1/L2 over all parameters (biases included), the dropout "
            "network's term on a dropout-off pass; weights chosen per network by validation "
            "accuracy (ties: smaller weight)"
        )
    return (
        f"Protocol **adam** (this package's earlier recipe, not the paper's): Adam lr "
        f"{config.lr:g}, batch ≤ {config.batch_size}, at most {config.max_epochs} epochs, "
        f"early stopping on the validation metric (patience {config.patience}), L1/L2 on "
        "weights only; weights chosen per network by validation metric (ties: smaller weight)"
    )


def reproduce(
    out_dir: str | os.PathLike[str],
    *,
    tasks: Sequence[str] = FULL.tasks,
    models: Sequence[str] = FULL.models,
    regularizers: Sequence[str] = FULL.regularizers,
    seeds: int | Sequence[int] = FULL.seeds,
    grid: Sequence[float] = FULL.grid,
    config: TrainConfig | None = None,
    refits: int = FULL.refits,
    jobs: int = 1,
    progress: bool = True,
    barcodes: bool = True,
) -> ReproduceResult:
    """Run (or resume) the paper's protocol and write the results, table and figures.

    Every option is checked before anything is created or trained. The sweep goes seed by seed,
    then the refits of the weights chosen on each seed's networks, so that an interrupted run
    leaves whole seeds behind.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created). ``results.csv`` in it is resumed.
    tasks, models, regularizers : sequence of str
    seeds : int or sequence of int
        A number ``s`` means seeds ``0 … s − 1`` (each below
        :data:`~topo_neurons.experiments.protocol.REFIT_SEED_OFFSET`).
    grid : sequence of float
        Weights λ.
    config : TrainConfig, optional
        Default: ``TrainConfig()``, the paper's protocol.
    refits : int
        Fresh-seed retrainings of each chosen weight and of ``none`` per network (0: none;
        see :func:`refit_specs`).
    jobs : int
        Parallel worker processes.
    progress : bool
        tqdm progress bars on stderr.
    barcodes : bool
        Make the barcode comparison figure (needs ``none``, ``t1`` and ``t2`` among the
        regularisers; trains three more networks).

    Returns
    -------
    ReproduceResult
    """
    start = time.perf_counter()
    commit = _git_commit()  # the code the sweep starts from
    if config is None:
        config = TrainConfig()
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive number of seeds; got {seeds}")
        seeds = list(range(int(seeds)))
    seeds = [int(s) for s in seeds]
    if any(not 0 <= s < REFIT_SEED_OFFSET for s in seeds):
        raise ValueError(
            f"seeds must lie in 0 … {REFIT_SEED_OFFSET - 1} (refits use seed + "
            f"{REFIT_SEED_OFFSET}·k); got {seeds}"
        )
    if not isinstance(refits, (int, np.integer)) or refits < 0:
        raise ValueError(f"refits must be a non-negative int; got {refits!r}")
    if not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive int; got {jobs!r}")
    specs = plan_runs(tasks, models, regularizers, grid, seeds)  # checks every name first
    for task in dict.fromkeys(tasks):  # missing data files or packages, before any output
        _dataset_for(task, config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    ran = skipped = 0
    chosen_from: dict[int, list] = {}
    for seed in seeds:  # the sweep seed by seed, then the refits: whole seeds come first
        sweep = run_sweep(
            [s for s in specs if s.seed == seed],
            config,
            results_path,
            jobs=jobs,
            progress=progress,
        )
        ran, skipped = ran + sweep.ran, skipped + sweep.skipped
        chosen_from[seed] = sweep.rows
    for seed in seeds if refits else []:
        fresh = refit_specs(chosen_from[seed], refits)
        sweep = run_sweep(fresh, config, results_path, jobs=jobs, progress=progress)
        ran, skipped = ran + sweep.ran, skipped + sweep.skipped
    chash = config.config_hash()
    wanted = {s.key(chash) for s in specs}

    def wanted_row(r: dict) -> bool:
        if r["config_hash"] != chash:
            return False
        if r["stage"] == "select":
            return _key(r) in wanted
        return (
            int(r["seed"]) % REFIT_SEED_OFFSET in seeds
            and r["task"] in tasks
            and r["model"] in models
            and r["regularizer"] in regularizers
        )

    rows = [r for r in read_results(results_path) if wanted_row(r)]
    summary = summarize(rows)
    files: dict[str, Path] = {"results": results_path}

    import matplotlib.pyplot as plt

    if summary.average_ranks is not None:
        cd = summary.cd
        n = len(summary.complete)
        fig, ax = plt.subplots(figsize=(7.0, 2.6))
        title = f"average ranks over {n} network(s), test metric"
        if cd is None:  # one network: draw ranks with the CD of N = 2 for scale
            cd = critical_difference(len(summary.regularizers), 2)
            title += " (one network: no test; CD of N = 2 drawn for scale)"
        plot_cd_diagram(
            summary.average_ranks,
            [REGULARIZER_LABELS[r] for r in summary.regularizers],
            cd,
            ax=ax,
            title=title,
        )
        files["cd_diagram"], files["cd_diagram_png"] = _save(fig, out / "cd_diagram")
        plt.close(fig)

    if barcodes and {"none", "t1", "t2"} <= set(summary.regularizers):
        net = next((n for n in summary.networks if {"t1", "t2"} <= set(summary.best[n])), None)
        if net is not None:
            task, model, seed = net
            w = {r: _f(summary.best[net][r]["weight"]) for r in ("t1", "t2")}
            fig = plot_barcode_comparison(RunSpec(task, model, "none", 0.0, seed), w, config)
            files["barcodes"], files["barcodes_png"] = _save(fig, out / "barcodes")
            plt.close(fig)

    seconds = time.perf_counter() - start
    header = [
        "# Reproduction of 'Decorrelating neurons using persistence'",
        "",
        _protocol_text(config) + ".",
        "",
        f"Configuration {chash}: tasks {', '.join(dict.fromkeys(tasks))}; "
        f"models {', '.join(dict.fromkeys(models))}; seeds {', '.join(map(str, seeds))}; "
        f"grid {', '.join(_fmt_w(w) for w in grid)}; {refits} fresh-seed refit(s) per chosen "
        f"weight; kind {config.kind!r}, T1 reduction {config.t1_reduction!r}, "
        f"T2 α {config.t2_alpha:g}, neurons sampled p = {config.sampling_p:g}.",
        "",
        f"This invocation: {ran} run(s) trained, {skipped} found finished, "
        f"{seconds / 60:.1f} min wall time with {jobs} job(s), started at commit {commit}; "
        f"{sum(_f(r['seconds']) for r in rows) / 60:.1f} CPU-minutes of training in all runs.",
        "",
    ]
    files["report"] = atomic_write_text(
        out / "results.md", "\n".join(header) + "\n" + markdown_report(rows, summary)
    )
    return ReproduceResult(out, files, summary, ran, skipped, seconds)


def _key(row: dict) -> tuple[str, ...]:
    return RunSpec(
        row["task"], row["model"], row["regularizer"], _f(row["weight"]), int(row["seed"])
    ).key(str(row["config_hash"]))
