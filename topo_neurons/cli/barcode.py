"""Subcommand ``barcode``: the 0-dim barcode of activations or of a distance matrix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._args import add_backend, add_command, add_kind, add_outputs, positive_int
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

if TYPE_CHECKING:
    from ..persistence import Barcode

__all__ = ["register"]

_BARCODE_EPILOG = """\
examples:
  topo-neurons barcode acts.npy --out results/          # results/acts.npz, results/acts.png
  topo-neurons barcode dist.npz --key D --input-kind distance --out results/ --name bc \\
      --formats png,pdf

  # activations too many for the n × n matrix: the tiled engine (blocks of 1024 neurons)
  topo-neurons barcode big_acts.npy --path tiled --block-size 1024 --out results/

writes into --out the barcode NAME.npz (read it with topo_neurons.Barcode.load) and its figure
NAME.png (NAME: --name, default the input's file name). The old form --out FILE.npz still works.
--path auto (the default) takes the dense n × n matrix when it fits in memory and the tiled
engine (activations only; no n × n matrix) when it does not; --block-size asks for the tiled
engine, --backend for the dense path.
"""

#: Neurons per block of ``--path tiled`` without ``--block-size``.
_TILE_BLOCK = 1024


def _cmd_barcode(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    _check_path_options(args)
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
        what = f"{X.shape[1]} neurons, {X.shape[0]} examples, d = {_KIND_TEXT[args.kind]}"
        bc = _activations_barcode(np.asarray(X, dtype=np.float64), args)
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


def _check_path_options(args: argparse.Namespace) -> None:
    """``--path``/``--block-size``/``--backend`` together, before any file is read."""
    if args.input_kind == "distance" and (args.path == "tiled" or args.block_size is not None):
        given = "--path tiled" if args.path == "tiled" else "--block-size"
        raise UserError(
            f"{given} applies to activations (the tiled engine never builds the n × n matrix); "
            f"--input-kind distance gives that matrix itself: leave out {given}"
        )
    if args.path == "dense" and args.block_size is not None:
        raise UserError("--block-size applies to --path tiled or auto; got --path dense")
    if args.backend != "auto" and (args.path == "tiled" or args.block_size is not None):
        raise UserError(
            f"--backend {args.backend} applies to the dense path; --path tiled and --block-size "
            f"compute the barcode with the tiled engine (leave out --backend, or use --path "
            f"dense without --block-size)"
        )


def _activations_barcode(X: np.ndarray, args: argparse.Namespace) -> Barcode:
    """The barcode of activations ``X`` (m, n) by ``--path``: dense, tiled, or auto.

    ``auto`` is the dense path when its ``n × n`` matrix fits in memory (the library's guard),
    else the tiled engine. Memory errors name only this command's options.
    """
    from ..correlation import correlation_dissimilarity
    from ..persistence import correlation_persistence, zero_persistence

    # An explicit --block-size asks for the tiled engine; an explicit --backend for the dense
    # path (under auto: neither option is ever silently ignored).
    tiled = args.path == "tiled" or (args.path == "auto" and args.block_size is not None)
    dense_only = args.path == "dense" or args.backend != "auto"
    if not tiled:
        try:
            with library_user_errors():
                D = correlation_dissimilarity(X, kind=args.kind)
        except UserError as exc:
            if not isinstance(exc.__cause__, MemoryError):
                raise
            if dense_only:
                first = str(exc.__cause__).split(". Ways out:")[0]
                given = "--path dense" if args.path == "dense" else f"--backend {args.backend}"
                raise UserError(
                    f"{given}: {first}. Use --path tiled (or --path auto without --backend), "
                    f"the tiled engine: it never holds the n × n matrix, only blocks of "
                    f"--block-size neurons (default {_TILE_BLOCK})"
                ) from None
            note(
                "barcode",
                f"note: the n × n matrix of {X.shape[1]} neurons does not fit in memory; "
                f"--path auto takes the tiled engine",
            )
        else:
            with library_user_errors():
                return zero_persistence(D, backend=args.backend)
    block = _TILE_BLOCK if args.block_size is None else args.block_size
    with library_user_errors():
        return correlation_persistence(X, args.kind, block_size=block)


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
    b.add_argument(
        "--path",
        choices=("auto", "dense", "tiled"),
        default="auto",
        help="activations: the n×n matrix (dense), or the tiled engine that never holds it "
        "(tiled); default auto: dense when it fits in memory (tiled with --block-size)",
    )
    b.add_argument(
        "--block-size",
        type=positive_int,
        metavar="K",
        help=f"neurons per block of the tiled engine, a multiple of 256 (default {_TILE_BLOCK})",
    )
    add_outputs(b, old_form="FILE.npz", name_default="the input's")
    b.add_argument("--figure", metavar="FILE", help="figure path instead (.png/.pdf/.svg)")
