"""``topo-neurons reproduce``: sweep, weight selection, table, statistics and figures.

:func:`reproduce` runs (or resumes) the sweep of :mod:`~topo_neurons.experiments.protocol`
and writes into one directory:

* ``results.csv``: every run (see :data:`~topo_neurons.experiments.protocol.RESULT_FIELDS`);
* ``results.md``: the test metric (mean ± std over seeds) of each regulariser at the weight
  chosen per network by validation, the chosen weights, the test metric of every weight, the
  diverged runs, the average ranks with the Friedman / Iman–Davenport tests and the Nemenyi
  critical difference;
* ``cd_diagram.pdf`` / ``.png``: the critical-difference diagram of the regularisers;
* ``barcodes.pdf`` / ``.png``: barcodes and death distributions of one network trained with no
  regulariser, T1 and T2 (each at its chosen weight), on the test set.

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

from .._io import atomic_path, atomic_write_text
from .protocol import (
    PAPER_GRID,
    REGULARIZER_LABELS,
    REGULARIZERS,
    RunSpec,
    TrainConfig,
    format_weight,
    plan_runs,
    run_sweep,
    train_network,
)
from .stats import critical_difference, friedman_test, plot_cd_diagram

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "FULL",
    "QUICK",
    "Preset",
    "ReproduceResult",
    "Summary",
    "markdown_report",
    "plot_barcode_comparison",
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
    """

    tasks: tuple[str, ...]
    models: tuple[str, ...]
    regularizers: tuple[str, ...]
    seeds: int
    grid: tuple[float, ...]
    max_epochs: int
    patience: int


#: The default (full) configuration: digits, the three MLPs, 5 seeds, the paper's grid, at most
#: 60 epochs (825 runs; chosen so that it finishes within an hour on a 2-core machine).
FULL = Preset(
    tasks=("digits",),
    models=("trapezium", "trapezium_dropout", "deep_trapezium"),
    regularizers=REGULARIZERS,
    seeds=5,
    grid=PAPER_GRID,
    max_epochs=60,
    patience=10,
)
#: ``--quick``: digits, one MLP, 3 seeds, five weights (each regulariser's useful range in the
#: full run: L1/T1 1e-4, L2 1e-3, DeCov 1e-5, Corr/T2 1e-1 … 1), at most 40 epochs: 93 runs.
QUICK = Preset(
    tasks=("digits",),
    models=("trapezium",),
    regularizers=REGULARIZERS,
    seeds=3,
    grid=(1e-5, 1e-4, 1e-3, 1e-1, 1.0),
    max_epochs=40,
    patience=10,
)


def _f(x: object) -> float:
    return float(x) if x not in ("", None) else math.nan


def select_best(rows: Sequence[dict]) -> dict[tuple[str, str, int], dict[str, dict]]:
    """Choose each regulariser's weight per network by validation metric.

    Per network (task, model, seed) and regulariser, the finished (``status == "ok"``) row with
    the highest validation metric wins; ties go to the lower validation loss, then the smaller
    weight. Diverged runs are never chosen.

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
        net = (str(r["task"]), str(r["model"]), int(r["seed"]))
        best.setdefault(net, {})
        if r["status"] != "ok":
            continue
        key = (-_f(r["val_metric"]), _f(r["val_loss"]), _f(r["weight"]))
        cur = best[net].get(r["regularizer"])
        if cur is None or key < (-_f(cur["val_metric"]), _f(cur["val_loss"]), _f(cur["weight"])):
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
    return Summary(regs, networks, complete, scores, avg, friedman, cd, best, diverged)


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
    lines += ["", f"Runs: {len(rows)} ({n_div} diverged)."]
    return "\n".join(lines) + "\n"


def plot_barcode_comparison(
    spec: RunSpec,
    weights: dict[str, float],
    config: TrainConfig,
    *,
    dataset=None,
) -> Figure:
    """Barcodes of one network trained with no regulariser, T1 and T2, side by side.

    Each network is retrained by the protocol (same seed, so the same run as in the sweep),
    its activations on the test set are recorded (all layers with parameters, no gradient),
    and the 0-dimensional persistence of ``1 − |ρ|`` (``config.kind``) is drawn as a barcode
    (bars coloured by layer), with the death distributions overlaid in a last panel.

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
        Four panels: none, T1, T2 barcodes, then the death distributions (ECDF).
    """
    import matplotlib.pyplot as plt
    import torch

    from .. import (
        ActivationRecorder,
        correlation_dissimilarity,
        plot_barcode,
        plot_death_distribution,
        zero_persistence,
    )
    from .data import load_task

    if dataset is None:
        dataset = load_task(
            spec.task, seed=config.split_seed, fractions=config.fractions, data_dir=config.data_dir
        )
    runs = [("none", 0.0), ("t1", float(weights["t1"])), ("t2", float(weights["t2"]))]
    barcodes = {}
    fig, axes = plt.subplots(1, 4, figsize=(14.0, 3.8), constrained_layout=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for ax, (reg, w) in zip(axes[:3], runs):
            run = RunSpec(spec.task, spec.model, reg, w, spec.seed)
            model, row = train_network(run, config, dataset)
            with ActivationRecorder(model, detach=True) as rec, torch.no_grad():
                model(torch.from_numpy(dataset.X_test))
            A = rec.activations()
            index = rec.neuron_index()
            layer_names = np.asarray(index.layers)[index.layer]
            bc = zero_persistence(correlation_dissimilarity(A.double(), kind=config.kind))
            label = "none" if reg == "none" else f"{REGULARIZER_LABELS[reg]} (λ = {_fmt_w(w)})"
            barcodes[label] = bc
            test = _f(row["test_metric"])
            plot_barcode(
                bc,
                layers=layer_names,
                ax=ax,
                title=f"{label}\ntest {row['metric']} {test:.3f}",
                legend=ax is axes[0],
            )
        plot_death_distribution(barcodes, ax=axes[3], title="death distributions (ECDF)")
    finally:
        torch.set_num_threads(threads)
    fig.suptitle(
        f"{spec.task} / {spec.model} / seed {spec.seed}: 0-dim persistence of the neurons "
        "(test set)",
        fontsize=10,
    )
    return fig


def _save(fig: Figure, path_stem: Path) -> list[Path]:
    out = []
    for ext in (".pdf", ".png"):
        target = path_stem.with_suffix(ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
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


def reproduce(
    out_dir: str | os.PathLike[str],
    *,
    tasks: Sequence[str] = FULL.tasks,
    models: Sequence[str] = FULL.models,
    regularizers: Sequence[str] = FULL.regularizers,
    seeds: int | Sequence[int] = FULL.seeds,
    grid: Sequence[float] = FULL.grid,
    config: TrainConfig | None = None,
    jobs: int = 1,
    progress: bool = True,
    barcodes: bool = True,
) -> ReproduceResult:
    """Run (or resume) the paper's protocol and write the results, table and figures.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created). ``results.csv`` in it is resumed.
    tasks, models, regularizers : sequence of str
    seeds : int or sequence of int
        A number ``s`` means seeds ``0 … s − 1``.
    grid : sequence of float
        Weights λ.
    config : TrainConfig, optional
        Default: ``TrainConfig(max_epochs=60, patience=10)`` (the full configuration).
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
        config = TrainConfig(max_epochs=FULL.max_epochs, patience=FULL.patience)
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive number of seeds; got {seeds}")
        seeds = list(range(int(seeds)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_runs(tasks, models, regularizers, grid, seeds)
    results_path = out / "results.csv"
    sweep = run_sweep(specs, config, results_path, jobs=jobs, progress=progress)
    rows = sweep.rows
    summary = summarize(rows)
    files: dict[str, Path] = {"results": results_path}

    import matplotlib.pyplot as plt

    if summary.average_ranks is not None:
        cd = summary.cd
        n = len(summary.complete)
        fig, ax = plt.subplots(figsize=(7.0, 2.6))
        title = f"average ranks over {n} network(s), test metric"
        if cd is None:  # one network: draw ranks with the CD of N = 1 for scale
            cd = critical_difference(len(summary.regularizers), 1)
            title += " (one network: no test)"
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
        f"Configuration {rows[0]['config_hash']}: tasks {', '.join(dict.fromkeys(tasks))}; "
        f"models {', '.join(dict.fromkeys(models))}; seeds {', '.join(map(str, seeds))}; "
        f"grid {', '.join(_fmt_w(w) for w in grid)}; max {config.max_epochs} epochs, "
        f"patience {config.patience}, Adam lr {config.lr:g}, batch ≤ {config.batch_size}, "
        f"kind {config.kind!r}, T1 reduction {config.t1_reduction!r}, "
        f"T2 α {config.t2_alpha:g}, neurons sampled p = {config.sampling_p:g}.",
        "",
        f"This invocation: {sweep.ran} run(s) trained, {sweep.skipped} found finished, "
        f"{seconds / 60:.1f} min wall time with {jobs} job(s), started at commit {commit}; "
        f"{sum(_f(r['seconds']) for r in rows) / 60:.1f} CPU-minutes of training in all runs.",
        "",
    ]
    files["report"] = atomic_write_text(
        out / "results.md", "\n".join(header) + "\n" + markdown_report(rows, summary)
    )
    return ReproduceResult(out, files, summary, sweep.ran, sweep.skipped, seconds)
