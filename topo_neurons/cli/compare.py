"""Subcommand ``compare``: the death distributions of several barcode files in one figure."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._args import add_command, add_outputs
from ._errors import UserError
from ._io import (
    FIGURE_FORMATS,
    figure_formats,
    figure_style,
    load_barcode,
    output_dir,
    print_written,
    save_figures,
)

__all__ = ["register"]

_COMPARE_EPILOG = """\
examples:
  topo-neurons compare none.npz t1.npz t2.npz --labels none T1 T2 --out results/ --formats pdf
  topo-neurons compare a.npz b.npz --style hist --out results/ --name hist

writes the figure NAME.png (NAME: --name, default compare) into --out. The old form
--out FIGURE.pdf still works.
"""


def _cmd_compare(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plotting import plot_death_distribution

    out, old_form = output_dir(args.out, "compare", tuple(f".{f}" for f in FIGURE_FORMATS))
    if old_form:
        if args.name:
            raise UserError("--name applies when --out is a directory; got --out FIGURE")
        targets = [out]
    else:
        targets = [out / f"{args.name or 'compare'}.{f}" for f in figure_formats(args.formats)]
    labels = args.labels if args.labels else [Path(p).stem for p in args.barcodes]
    if len(labels) != len(args.barcodes):
        raise UserError(f"got {len(args.barcodes)} barcode files but {len(labels)} --labels")
    if len(set(labels)) != len(labels):
        raise UserError(f"--labels must be distinct; got {labels}")
    barcodes = {label: load_barcode(path) for label, path in zip(labels, args.barcodes)}
    kind = "ECDF" if args.style == "ecdf" else "histogram"
    title = args.title or f"Deaths of {', '.join(labels)} ({kind})"
    with figure_style():
        fig, ax = plt.subplots()
        try:
            plot_death_distribution(barcodes, style=args.style, ax=ax, title=title)
            save_figures(fig, targets)
        finally:
            plt.close(fig)
    if not args.quiet:
        for label, bc in barcodes.items():
            d = bc.deaths
            med = f"median death {np.median(d):.4g}" if d.size else "no finite bars"
            print(f"{label}: {bc.n_points} points, {med}")
        print_written(targets)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand to ``sub``."""
    c = add_command(
        sub,
        "compare",
        _cmd_compare,
        help="overlay the death distributions of several barcodes",
        description="Draw the death distributions of several barcode files in one figure.",
        epilog=_COMPARE_EPILOG,
    )
    c.add_argument("barcodes", nargs="+", help="barcode .npz files (topo-neurons barcode)")
    c.add_argument("--labels", nargs="+", help="one label per file (default: file names)")
    c.add_argument("--style", choices=("ecdf", "hist"), default="ecdf", help="default ecdf")
    add_outputs(c, old_form="FIGURE", name_default="compare")
