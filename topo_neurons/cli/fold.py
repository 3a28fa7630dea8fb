"""Subcommand ``fold``: fold a model's redundant neurons; write the weights, report and a figure."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._args import add_command, add_model_and_data, positive_int
from ._errors import UserError, library_user_errors, note
from ._io import (
    FIGURE_FORMATS,
    csv_list,
    figure_formats,
    figure_style,
    load_array,
    output_dir,
    print_written,
    save_figures,
    staged_outputs,
)
from ._load import DATASETS, load_data, load_model

if TYPE_CHECKING:
    import torch

__all__ = ["register"]

_EPILOG = """\
examples:
  topo-neurons fold --model mypkg.models:make_mlp --weights mlp.pt --data digits \\
      --standardize --labels digits --threshold 0.05 --out folded/
  topo-neurons fold --model net.py:make --weights w.pt --data x.npy --labels y.npy \\
      --threshold 0.02 --max-error 0.05 --dry-run --out plan/

writes into --out: folded.pt (the folded state dict, torch.save of tensors only; its layer
sizes are those of fold.json's "n_neurons" − "n_removed" per layer), fold.json, fold.md and
fold.png (.pdf/.svg copies with --formats): with --labels, accuracy on --data against the
fraction of neurons removed, folding at the threshold and at 0, ¼, ½, 2 and 4 times it;
without, the kept and removed neurons per layer. All files of one run are moved in together
(as for analyse); --dry-run writes no folded.pt.
"""

_OUTPUTS = (
    "folded.pt",
    "fold.json",
    "fold.md",
    *(f"fold.{f}" for f in FIGURE_FORMATS),
)


def _labels(spec: str, data: str, limit: int | None, m: int) -> np.ndarray:
    """Class labels: a ``.npy``/``.npz`` path, or the name of the bundled ``--data`` set."""
    if spec in DATASETS:
        if spec != data:
            raise UserError(f"--labels {spec!r} names a bundled data set; --data is {data!r}")
        from ..experiments.data import load_bundled

        y = load_bundled(spec)[1]
    else:
        y = load_array(spec, None, what="labels file")
    y = np.asarray(y)
    if limit is not None:
        y = y[:limit]
    if y.ndim != 1 or y.shape[0] != m or y.dtype.kind not in "iub":
        raise UserError(
            f"--labels {spec!r}: expected {m} integer class labels (one per example of --data); "
            f"got shape {y.shape}, dtype {y.dtype}"
        )
    return y.astype(np.int64)


def _accuracy(net: torch.nn.Module, X: np.ndarray, y: np.ndarray) -> float:
    import torch

    from .._modes import eval_mode

    dtype = next(net.parameters()).dtype
    with eval_mode(net), torch.no_grad():
        out = net(torch.from_numpy(X).to(dtype))
    return float((out.argmax(dim=1).numpy() == y).mean())


def _cmd_fold(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..compress import fold_redundant
    from ..io import atomic_write_text
    from ..plotting._fold import plot_fold_accuracy, plot_fold_layers

    formats = figure_formats(args.formats)
    if not 0.0 <= args.threshold <= 1.0:
        raise UserError(
            f"--threshold must be in [0, 1] (a dissimilarity 1 − |ρ|); got {args.threshold}"
        )
    out, _ = output_dir(args.out, "fold")
    blocked = [n for n in _OUTPUTS if (out / n).exists() and not (out / n).is_file()]
    if blocked:
        raise UserError(f"--out {args.out!r}: {blocked[0]!r} exists and is not a file")
    net = load_model(args.model, args.weights, args.torchscript)
    if args.model is not None and args.weights is None:
        note(
            "fold",
            f"warning: no --weights given: folding the random initialisation of {args.model}()",
        )
    X = load_data(args.data, args.key, args.standardize, args.limit)
    y = None if args.labels is None else _labels(args.labels, args.data, args.limit, len(X))
    dtype = next(net.parameters()).dtype
    Xt = torch.from_numpy(X).to(dtype)
    options = {
        "layers": csv_list(args.layers),
        "max_error": args.max_error,
        "fold_constant": args.fold_constant,
        "batch_size": args.batch_size,
    }
    with library_user_errors():
        folded, report = fold_redundant(net, Xt, args.threshold, dry_run=args.dry_run, **options)
        curve: tuple[list[float], list[float]] | None = None
        if y is not None:
            ts = sorted(
                {0.0, args.threshold, *(min(1.0, args.threshold * k) for k in (0.25, 0.5, 2, 4))}
            )
            points = []
            for t in ts:
                small, rep = (
                    (folded, report)
                    if t == args.threshold and folded is not None
                    else fold_redundant(net, Xt, t, **options)
                )
                points.append((rep.fraction_removed, _accuracy(small, X, y)))
            curve = ([p[0] for p in points], [p[1] for p in points])
    with staged_outputs(out, _OUTPUTS) as staging:
        written = []
        if folded is not None:
            state = {k: v.detach().cpu() for k, v in folded.state_dict().items()}
            written.append(staging.write("folded.pt", lambda p: torch.save(state, p)))
        written += [
            staging.write("fold.json", report.to_json),
            staging.write("fold.md", lambda p: atomic_write_text(p, report.to_markdown())),
        ]
        with figure_style():
            fig, ax = plt.subplots()
            try:
                if curve is not None:
                    plot_fold_accuracy(
                        {"fold": curve},
                        baseline=_accuracy(net, X, y),
                        ax=ax,
                        title=f"Folding on {Path(args.data).name}, {len(X)} examples",
                    )
                else:
                    plot_fold_layers(report, ax=ax, title=f"Folded at t = {args.threshold:g}")
                written += [
                    staging.write(f"fold.{f}", lambda p, fig=fig: save_figures(fig, [p]))
                    for f in formats
                ]
            finally:
                plt.close(fig)
    if not args.quiet:
        print(report.to_markdown().split("\n## ")[0].rstrip())
        print_written(written)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fold`` subcommand to ``sub``."""
    p = add_command(
        sub,
        "fold",
        _cmd_fold,
        help="fold redundant neurons into the neurons they duplicate",
        description="Fold each single-linkage cluster of a model's neurons (at --threshold) into "
        "one representative; write the folded weights, the report and a figure.",
        epilog=_EPILOG,
    )
    add_model_and_data(p)
    p.add_argument(
        "--labels",
        metavar="LABELS",
        help="class labels of --data (a .npy/.npz path, or the bundled --data name): the figure "
        "then shows accuracy against the fraction removed",
    )
    p.add_argument("--threshold", type=float, default=0.05, help="in [0, 1] (default 0.05)")
    p.add_argument("--layers", metavar="A,B", help="layers to fold (default: every foldable one)")
    p.add_argument(
        "--max-error", type=float, metavar="E", help="refuse folds of larger relative error"
    )
    p.add_argument(
        "--fold-constant",
        action="store_true",
        help="also fold neurons constant on --data (dead ReLUs) into the next bias",
    )
    p.add_argument("--dry-run", action="store_true", help="report only; no folded.pt")
    p.add_argument("--batch-size", type=positive_int, default=256, help="default 256")
    p.add_argument("--formats", default="png", help="figure formats, e.g. png,pdf,svg")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--quiet", action="store_true", help="no summary")
