"""Subcommand ``barcode``: the 0-dim barcode of activations or of a distance matrix."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._args import add_backend, add_command, add_kind, add_outputs
from ._errors import UserError, library_user_errors, note
from ._io import (
    FIGURE_FORMATS,
    figure_formats,
    figure_style,
    load_array,
    output_dir,
    print_written,
    save_figures,
)

__all__ = ["register"]

_BARCODE_EPILOG = """\
examples:
  topo-neurons barcode acts.npy --out results/          # results/acts.npz, results/acts.png
  topo-neurons barcode dist.npz --key D --input-kind distance --out results/ --name bc \\
      --formats png,pdf

writes into --out the barcode NAME.npz (read it with topo_neurons.Barcode.load) and its figure
NAME.png (NAME: --name, default the input's file name). The old form --out FILE.npz still works.
"""


def _cmd_barcode(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..correlation import correlation_dissimilarity
    from ..persistence import zero_persistence
    from ..plotting import plot_barcode

    out, old_form = output_dir(args.out, "barcode", (".npz",))
    name = args.name or Path(args.input).stem
    if old_form:
        if args.name:
            raise UserError("--name applies when --out is a directory; got --out FILE.npz")
        target = out
        default_figures = [out.with_suffix(".png")]
    else:
        target = out / f"{name}.npz"
        default_figures = [out / f"{name}.{f}" for f in figure_formats(args.formats)]
    figures = [Path(args.figure)] if args.figure else default_figures
    for figure in figures:
        fmt = figure.suffix.lstrip(".").lower()
        if fmt not in FIGURE_FORMATS:
            raise UserError(
                f"--figure {str(figure)!r}: unknown format {fmt!r}; valid formats are "
                f"{FIGURE_FORMATS}"
            )
    X = load_array(args.input, args.key)
    if X.dtype.kind not in "fiub":
        raise UserError(f"{args.input!r} must hold numbers; got dtype {X.dtype}")
    if args.input_kind == "activations":
        if X.ndim != 2:
            raise UserError(
                f"activations must have shape (m examples, n neurons); {args.input!r} has "
                f"shape {X.shape} (use --input-kind distance for a distance matrix)"
            )
        if X.shape[0] <= X.shape[1]:
            note(
                "barcode",
                f"warning: m = {X.shape[0]} examples for n = {X.shape[1]} neurons (m ≤ n): the "
                f"correlations span at most m − 1 dimensions and the deaths are biased towards 0",
            )
        with library_user_errors():
            D = correlation_dissimilarity(np.asarray(X, dtype=np.float64), kind=args.kind)
        what = f"{X.shape[1]} neurons, {X.shape[0]} examples, d = {_KIND_TEXT[args.kind]}"
    else:
        if X.ndim != 2 or X.shape[0] != X.shape[1]:
            raise UserError(
                f"a distance matrix must be square (n, n); {args.input!r} has shape {X.shape}"
            )
        D = np.asarray(X, dtype=np.float64)
        what = f"{X.shape[0]} points, distance matrix"
    with library_user_errors():
        bc = zero_persistence(D, backend=args.backend)
    bc.save(target)
    title = args.title or f"Barcode of {Path(args.input).name}\n({what})"
    with figure_style():
        fig, ax = plt.subplots()
        try:
            plot_barcode(bc, ax=ax, title=title)
            save_figures(fig, figures)
        finally:
            plt.close(fig)
    if not args.quiet:
        print(f"{bc!r}")
        print_written([target, *figures])
    return 0


_KIND_TEXT = {"abs": "1 − |ρ|", "sqrt": "√(1 − ρ²)"}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``barcode`` subcommand to ``sub``."""
    b = add_command(
        sub,
        "barcode",
        _cmd_barcode,
        help="barcode of activations or of a distance matrix",
        description="Compute the 0-dim barcode of activations (m examples × n neurons, "
        "through the correlation dissimilarity) or of a distance matrix; save it and its figure.",
        epilog=_BARCODE_EPILOG,
    )
    b.add_argument("input", help=".npy or .npz file")
    b.add_argument("--key", help="array name inside an .npz file")
    b.add_argument(
        "--input-kind",
        choices=("activations", "distance"),
        default="activations",
        help="what the array holds (default activations)",
    )
    add_kind(b, help="dissimilarity for activations")
    add_backend(b)
    add_outputs(b, old_form="FILE.npz", name_default="the input's")
    b.add_argument("--figure", metavar="FILE", help="figure path instead (.png/.pdf/.svg)")
