"""``reproduce``: the sweep, the refits, the report and the figures in one directory."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch import nn

from ...io import atomic_write_text
from .._figures import plot_barcode_networks, plot_cd_diagram, save_figure
from .._threads import one_torch_thread
from ..data import Dataset, load_task
from ..protocol import (
    REFIT_SEED_OFFSET,
    REGULARIZER_LABELS,
    RunSpec,
    TrainConfig,
    _dataset_for,
    _weight_label,
    plan_runs,
    read_results,
    run_sweep,
    train_network,
)
from ..stats import critical_difference
from ._outdir import check_output_dir, naming, output_lock
from ._presets import FULL
from ._report import _protocol_text, markdown_report
from ._summary import Summary, _f, refit_specs, summarize

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "ReproduceResult",
    "plot_barcode_comparison",
    "reproduce",
    "train_barcode_networks",
]


def train_barcode_networks(
    spec: RunSpec,
    weights: Mapping[str, float],
    config: TrainConfig,
    *,
    dataset: Dataset | None = None,
) -> dict[str, tuple[nn.Module, dict[str, object]]]:
    """Train one network with no regulariser, T1 and T2, for the barcode comparison.

    Each network is trained by the protocol (same seed, so the same run as in the sweep; one
    torch thread, as a sweep's worker).

    Parameters
    ----------
    spec : RunSpec
        The network (task, model, seed); its regulariser and weight are ignored.
    weights : mapping
        ``{"t1": λ1, "t2": λ2}``: the weights to train T1 and T2 with.
    config : TrainConfig
    dataset : Dataset, optional
        The loaded task (loaded from ``spec.task`` and ``config`` when ``None``).

    Returns
    -------
    dict
        ``{"none": (model, row), "t1": (model, row), "t2": (model, row)}``, as
        :func:`~topo_neurons.experiments.protocol.train_network` returns them.
    """
    dataset = _task_data(spec, config) if dataset is None else dataset
    runs = [("none", 0.0), ("t1", float(weights["t1"])), ("t2", float(weights["t2"]))]
    with one_torch_thread():
        return {
            reg: train_network(RunSpec(spec.task, spec.model, reg, w, spec.seed), config, dataset)
            for reg, w in runs
        }


def plot_barcode_comparison(
    spec: RunSpec,
    weights: Mapping[str, float],
    config: TrainConfig,
    *,
    dataset: Dataset | None = None,
) -> Figure:
    """Train the three networks of :func:`train_barcode_networks` and draw their barcodes.

    The two steps in one call (``reproduce`` makes them separately):
    ``plot_barcode_networks(train_barcode_networks(spec, weights, config, dataset=dataset),
    dataset, kind=config.kind)``; the arguments are those of :func:`train_barcode_networks`.

    Returns
    -------
    matplotlib.figure.Figure
        Four panels sharing the death axis: none, T1, T2, death distributions (ECDF).
    """
    dataset = _task_data(spec, config) if dataset is None else dataset
    networks = train_barcode_networks(spec, weights, config, dataset=dataset)
    return plot_barcode_networks(networks, dataset, kind=config.kind)


def _task_data(spec: RunSpec, config: TrainConfig) -> Dataset:
    return load_task(
        spec.task, seed=config.split_seed, fractions=config.fractions, data_dir=config.data_dir
    )


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
    refits: int = FULL.refits,
    jobs: int = 1,
    progress: bool = True,
    barcodes: bool = True,
) -> ReproduceResult:
    """Run (or resume) the paper's protocol and write the results, table and figures.

    Every option is checked before anything is created or trained; then the output folder is
    created, proven writable (a probe file is written, synced and removed: a read-only folder
    or a full disk is told before any training) and locked for the whole call (a second
    ``reproduce`` on the same folder is refused at once, naming the process that holds it).
    The sweep goes seed by seed, then the refits of the weights chosen on each seed's
    networks, so that an interrupted run leaves whole seeds behind. Every file is replaced
    whole (atomically): a failure to write (a full disk) loses nothing already written.

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

    Raises
    ------
    ValueError
        A bad option, a task's data that cannot be loaded, an output path that is a file.
    OutputInUseError
        (a ``ValueError``) Another process runs ``reproduce`` into ``out_dir``.
    OSError
        The output folder cannot be written (:class:`OutputNotWritableError`, before any
        training), or a later write fails (e.g. a full disk); ``filename`` says where.
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
    # The folder is proven writable (a probe file) and locked before anything is trained.
    out = check_output_dir(Path(out_dir))
    with output_lock(out), naming(out):
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
                desc=f"seed {seed}: sweep",
            )
            ran, skipped = ran + sweep.ran, skipped + sweep.skipped
            chosen_from[seed] = sweep.rows
        for seed in seeds if refits else []:
            fresh = refit_specs(chosen_from[seed], refits, config.protocol == "paper")
            sweep = run_sweep(
                fresh,
                config,
                results_path,
                jobs=jobs,
                progress=progress,
                desc=f"seed {seed}: refits",
            )
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
        # Under the paper's protocol the authors' convergence rule (CONVERGENCE_RULE) applies.
        summary = summarize(rows, convergence_rule=config.protocol == "paper")
        files: dict[str, Path] = {"results": results_path}
        distances: list[str] = []  # the barcode networks' distances to none's, for the report

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
            files["cd_diagram"], files["cd_diagram_png"] = save_figure(fig, out / "cd_diagram")
            plt.close(fig)

        if barcodes and {"none", "t1", "t2"} <= set(summary.regularizers):
            net = next((n for n in summary.networks if {"t1", "t2"} <= set(summary.best[n])), None)
            if net is not None:
                task, model, seed = net
                w = {r: _f(summary.best[net][r]["weight"]) for r in ("t1", "t2")}
                data = _dataset_for(task, config)
                spec = RunSpec(task, model, "none", 0.0, seed)
                networks = train_barcode_networks(spec, w, config, dataset=data)
                distances = [_distances_to_none(networks, data, config.kind, net)]
                fig = plot_barcode_networks(networks, data, kind=config.kind)
                files["barcodes"], files["barcodes_png"] = save_figure(fig, out / "barcodes")
                plt.close(fig)

        seconds = time.perf_counter() - start
        header = [
            "# Reproduction of 'Decorrelating neurons using persistence'",
            "",
            _protocol_text(config) + ".",
            "",
            f"Configuration {chash}: tasks {', '.join(dict.fromkeys(tasks))}; "
            f"models {', '.join(dict.fromkeys(models))}; seeds {', '.join(map(str, seeds))}; "
            f"grid {', '.join(_weight_label(w) for w in grid)}; {refits} fresh-seed refit(s) per "
            f"chosen weight; kind {config.kind!r}, T1 reduction {config.t1_reduction!r}, "
            f"T2 α {config.t2_alpha:g}, neurons sampled p = {config.sampling_p:g}.",
            "",
            f"This invocation: {ran} run(s) trained, {skipped} found finished, "
            f"{seconds / 60:.1f} min wall time with {jobs} job(s), started at commit {commit}; "
            f"{sum(_f(r['seconds']) for r in rows) / 60:.1f} CPU-minutes of training in all runs.",
            "",
            *(line for d in distances for line in (d, "")),
        ]
        files["report"] = atomic_write_text(
            out / "results.md", "\n".join(header) + "\n" + markdown_report(rows, summary)
        )
        return ReproduceResult(out, files, summary, ran, skipped, seconds)


def _distances_to_none(networks: Mapping, data: Dataset, kind: str, net: tuple) -> str:
    """A line of the report: the barcode of each network of the barcode figure (its neurons
    on the training inputs) against none's, Wasserstein distance of order 1 (GUDHI)."""
    from ... import analyse, barcode_distance
    from ..models import neuron_layers

    bars = {
        reg: analyse(model, data.X_train, layers=neuron_layers(model), kind=kind).barcode
        for reg, (model, _) in networks.items()
    }
    parts = [f"{REGULARIZER_LABELS[r]} {barcode_distance(bc, bars['none']):.4g}"
             for r, bc in bars.items() if r != "none"]  # fmt: skip
    return (
        f"Barcode distance to none's (Wasserstein, order 1, GUDHI; {net[0]} / {net[1]} / seed "
        f"{net[2]}: the networks of the barcode figure, neurons on the training inputs): "
        f"{', '.join(parts)}."
    )


def _key(row: dict) -> tuple[str, ...]:
    return RunSpec(
        row["task"], row["model"], row["regularizer"], _f(row["weight"]), int(row["seed"])
    ).key(str(row["config_hash"]))
