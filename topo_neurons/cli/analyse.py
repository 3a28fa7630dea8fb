"""Subcommand ``analyse``: a redundancy report (JSON + Markdown) and four figures of a model."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._args import add_backend, add_command, add_kind, add_model_and_data, positive_int
from ._errors import UserError, library_user_errors, note, progress_enabled
from ._io import (
    FIGURE_FORMATS,
    csv_list,
    figure_formats,
    figure_style,
    floats,
    output_dir,
    print_written,
    save_figures,
    staged_outputs,
)
from ._load import DATASETS, SAMPLINGS, load_data, load_model, sampling_strategy

if TYPE_CHECKING:
    import torch
    from distributed import Client

    from ..analysis import RedundancyReport
    from ..capture import SamplingStrategy

__all__ = ["register"]

_ANALYSE_EPILOG = """\
examples:
  # a model factory (package.module:function or path/to/file.py:function) + a state dict
  topo-neurons analyse --model mypkg.models:make_mlp --weights mlp.pt --data digits \\
      --standardize --out report/
  # a TorchScript nn.Sequential, data from a .npy file, two layers, 10% importance sampling
  topo-neurons analyse --torchscript model.pt --data inputs.npy --layers 0,2 \\
      --sampling importance --p 0.1 --out report/

writes into --out: report.json, report.md, barcode.png, diagram.png, dendrogram.png, mst.png
(and .pdf/.svg copies with --formats png,pdf,svg; csv adds the tables layers.csv, pairs.csv,
neurons.csv of RedundancyReport.to_frame, pandas), all of one run: they are written into a
hidden --out/.staging-* folder and moved in together at the end, replacing an earlier run's
files (its figures in formats this run does not write are removed); an interrupted or failed
run leaves the earlier files complete. Without --weights the model's random initialisation is
analysed (with a warning).
"""


_FIGURES = ("barcode", "diagram", "dendrogram", "mst")
#: Every file an ``analyse`` run may write into ``--out`` (a run removes those it does not write).
_ALL_OUTPUTS = (
    "report.json",
    "report.md",
    *(f"{fig}.{f}" for fig in _FIGURES for f in FIGURE_FORMATS),
    *(f"{kind}.csv" for kind in ("layers", "pairs", "neurons")),
)


def _model_label(args: argparse.Namespace) -> str:
    if args.torchscript is not None:
        return Path(args.torchscript).name
    name = str(args.model).rpartition(":")[2]
    return name if args.weights is not None else f"{name} (untrained)"


def _analyse_title(args: argparse.Namespace, report: RedundancyReport, what: str) -> str:
    """What a figure shows: the kind of figure, model, layers, data (two short lines)."""
    layers = list(report.layers)
    shown = ", ".join(layers) if len(layers) <= 4 else f"{len(layers)} layers"
    data = Path(args.data).name if args.data not in DATASETS else args.data
    return (
        f"{what} of {_model_label(args)} ({shown})\n"
        f"{report.network.n_neurons} neurons · {data}, {report.n_examples} examples"
    )


def _run_analyse(
    net: torch.nn.Module,
    X: np.ndarray,
    args: argparse.Namespace,
    sampling: SamplingStrategy,
    thresholds: tuple[float, ...],
) -> RedundancyReport:
    from ..analysis import analyse

    address = getattr(args, "scheduler", None)
    timeout = getattr(args, "scheduler_timeout", None)
    with (
        _dask_client(address, timeout) as client,
        library_user_errors(),
        _cluster_errors(),
    ):
        return analyse(
            net,
            X,
            layers=csv_list(args.layers),
            sampling=sampling,
            kind=args.kind,
            batch_size=args.batch_size,
            thresholds=thresholds,
            top_k=args.top_k,
            progress=progress_enabled(args),
            backend=args.backend,
            point=args.point,
            positions=args.positions,
            device=args.device,
            path=getattr(args, "path", "auto"),
            scheduler=client,
        )


@contextlib.contextmanager
def _cluster_errors() -> Iterator[None]:
    """A cluster that lost its workers is reported in one line (exit status 2)."""
    from ..persistence import ClusterLostError

    try:
        yield
    except ClusterLostError as exc:
        raise UserError(str(exc)) from exc


@contextlib.contextmanager
def _dask_client(address: str | None, timeout: float | None) -> Iterator[Client | None]:
    """A ``distributed.Client`` connected to ``address`` (closed on exit), or ``None``.

    ``timeout``: seconds to wait for the scheduler (``None``: the library's default, 10).
    """
    if not address:
        yield None
        return
    from ..persistence import connect_scheduler

    try:
        client = (
            connect_scheduler(address)
            if timeout is None
            else connect_scheduler(address, timeout=timeout)
        )
    except ImportError as exc:
        raise UserError(f"--scheduler: {exc}") from None
    except ValueError as exc:
        raise UserError(f"--scheduler {address!r}: {exc}") from exc
    except OSError as exc:
        msg = f"--scheduler {address!r}: {exc} (to wait longer: --scheduler-timeout SECONDS)"
        raise UserError(msg) from exc
    try:
        yield client
    finally:
        client.close()


def _scheduler_timeout(text: str) -> float:
    """``argparse`` type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _cmd_analyse(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write_text
    from ..plotting import plot_barcode, plot_dendrogram, plot_diagram, plot_mst

    requested = [f for f in (args.formats or "").split(",") if f.strip()]
    tables = "csv" in [f.strip() for f in requested]  # csv: the report's tables, not a figure
    figures_asked = ",".join(f for f in requested if f.strip() != "csv")
    formats = figure_formats(figures_asked) if figures_asked or not tables else []
    if tables and importlib.util.find_spec("pandas") is None:
        raise UserError("--formats csv needs pandas: pip install topo_neurons[pandas]")
    thresholds = floats(args.thresholds, "--thresholds")
    if args.limit is not None and args.limit < 2:
        raise UserError(f"--limit must be ≥ 2; got {args.limit}")
    if args.scheduler_timeout is not None and not args.scheduler:
        raise UserError("--scheduler-timeout applies with --scheduler ADDRESS")
    if args.scheduler and args.path == "dense":
        raise UserError(
            "--scheduler runs the tiled engine's tasks; --path dense does not use it "
            "(use --path tiled or auto)"
        )
    # Outputs are checked before the analysis runs (not after minutes of work).
    out, _ = output_dir(args.out, "analyse")
    blocked = [n for n in _ALL_OUTPUTS if (out / n).exists() and not (out / n).is_file()]
    if blocked:
        raise UserError(f"--out {args.out!r}: {blocked[0]!r} exists and is not a file")
    net = load_model(args.model, args.weights, args.torchscript)
    if args.model is not None and args.weights is None:
        note(
            "analyse",
            f"warning: no --weights given: analysing the random initialisation of "
            f"{args.model}(), not a trained network",
        )
    X = load_data(args.data, args.key, args.standardize, args.limit)
    sampling = sampling_strategy(args.sampling, args.p, args.seed)
    report = _run_analyse(net, X, args, sampling, thresholds)
    report.meta.update(
        {
            "model": args.model or args.torchscript,
            "weights": args.weights,
            "data": args.data,
            "standardize": bool(args.standardize),
        }
    )

    def title(what: str) -> str:
        return _analyse_title(args, report, what)

    figures = {
        "barcode": lambda ax: plot_barcode(report, ax=ax, title=title("Barcode")),
        "diagram": lambda ax: plot_diagram(report, ax=ax, title=title("H0 diagram")),
        # Highlight merges below the middle threshold (0.2 by default).
        "dendrogram": lambda ax: plot_dendrogram(
            report,
            ax=ax,
            threshold=sorted(thresholds)[len(thresholds) // 2],
            title=title("Dendrogram"),
        ),
        "mst": lambda ax: plot_mst(report, ax=ax, title=title("MST")),
    }
    # One run's files move in together: the folder never holds a mix of two runs.
    with staged_outputs(out, _ALL_OUTPUTS) as staging:
        written = [
            staging.write("report.json", report.to_json),
            staging.write("report.md", lambda p: atomic_write_text(p, report.to_markdown())),
        ]
        for kind in ("layers", "pairs", "neurons") if tables else ():
            text = report.to_frame(kind).to_csv(index=False)
            written.append(staging.write(f"{kind}.csv", lambda p, t=text: atomic_write_text(p, t)))
        with figure_style():
            for name, draw in figures.items() if formats else ():
                fig, ax = plt.subplots()
                try:
                    draw(ax)
                    written += [
                        staging.write(f"{name}.{f}", lambda p, fig=fig: save_figures(fig, [p]))
                        for f in formats
                    ]
                finally:
                    plt.close(fig)
    if not args.quiet:
        print(report.to_markdown().split("\n## ")[0].rstrip())
        print_written(written)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``analyse`` subcommand to ``sub``."""
    p = add_command(
        sub,
        "analyse",
        _cmd_analyse,
        help="redundancy report + figures of a trained model",
        description="Run a model over a data set, accumulate the correlations of its neurons, "
        "and write a redundancy report (JSON + Markdown) and figures.",
        epilog=_ANALYSE_EPILOG,
    )
    add_model_and_data(p)
    p.add_argument("--layers", metavar="A,B", help="comma-separated layer names (default: all)")
    p.add_argument(
        "--point",
        choices=("post", "pre"),
        default="post",
        help="a layer's neurons after its activation (default) or before it",
    )
    p.add_argument(
        "--positions",
        choices=("auto", "neurons", "examples"),
        default="auto",
        help="conv pixels / sequence tokens as examples or as parts of neurons (default auto)",
    )
    add_kind(p, help="dissimilarity (default abs)")
    p.add_argument("--sampling", choices=SAMPLINGS, default="all", help="neuron sampling")
    p.add_argument("--p", type=float, help="fraction of each hidden layer for --sampling")
    p.add_argument("--seed", type=int, default=0, help="seed of --sampling random")
    p.add_argument("--batch-size", type=positive_int, default=256, help="default 256")
    p.add_argument("--thresholds", default="0.1,0.2,0.5", help="scales for effective neurons")
    p.add_argument("--top-k", type=int, default=20, help="redundant pairs listed (default 20)")
    add_backend(p)
    p.add_argument(
        "--device", metavar="DEV", help="where the model runs: cpu, cuda, cuda:1, … (default cpu)"
    )
    p.add_argument(
        "--path",
        choices=("auto", "dense", "tiled"),
        default="auto",
        help="n×n accumulator (dense) or kept activations + tiled engine (default auto: tiled "
        "when the matrices would exceed 2 GiB)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the tiled engine's tasks on a running Dask scheduler, e.g. tcp://host:8786",
    )
    p.add_argument(
        "--scheduler-timeout",
        type=_scheduler_timeout,
        metavar="SECONDS",
        help="how long to wait for --scheduler to answer (default 10)",
    )
    p.add_argument(
        "--formats", default="png", help="figure formats, e.g. png,pdf,svg; csv: the tables"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
