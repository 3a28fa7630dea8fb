"""Subcommand ``compare``: the death distributions of several barcode files in one figure, and
(``--test``) a permutation test between two groups of them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..io import atomic_write_text
from ..persistence import Barcode
from ._args import add_command, add_outputs, positive_int
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
  topo-neurons compare none_0.npz none_1.npz none_2.npz t1_0.npz t1_1.npz t1_2.npz \\
      --groups none none none T1 T1 T1 --test --out results/

writes the figure NAME.png (NAME: --name, default compare) into --out. The old form
--out FIGURE.pdf still works. With --test (and --groups naming two groups) a permutation
test between the groups' barcodes (topo_neurons.barcode_permutation_test: the mean distance
between the groups minus the mean within them) is printed and written to NAME_test.json.
"""


def _run_test(
    args: argparse.Namespace, labels: list[str], barcodes: dict[str, Barcode], out: Path | None
) -> Path | None:
    """The permutation test of ``--test``: printed, and written to ``NAME_test.json`` where
    ``--out`` is a directory; returns the path written (or None)."""
    from ..persistence import barcode_permutation_test

    if args.groups is None:
        raise UserError("--test needs --groups: one group name per barcode file, two groups")
    if len(args.groups) != len(labels):
        raise UserError(f"got {len(labels)} barcode files but {len(args.groups)} --groups")
    names = list(dict.fromkeys(args.groups))
    if len(names) != 2:
        raise UserError(f"--groups must name exactly two groups; got {names}")
    members = {g: [lab for lab, grp in zip(labels, args.groups) if grp == g] for g in names}
    for g, labs in members.items():
        if len(labs) < 2:
            raise UserError(f"group {g!r} has {len(labs)} barcode file(s); each needs at least 2")
    order = args.order if args.metric == "wasserstein" else None
    try:
        res = barcode_permutation_test(
            [barcodes[lab] for lab in members[names[0]]],
            [barcodes[lab] for lab in members[names[1]]],
            metric=args.metric,
            order=order,
            n_permutations=args.permutations,
            seed=args.seed,
        )
    except (ImportError, ValueError) as exc:
        raise UserError(str(exc)) from None
    how = "splits, all of them" if res.exact else "random relabellings"
    print(
        f"permutation test {names[0]} ({len(members[names[0]])}) against {names[1]} "
        f"({len(members[names[1]])}), {args.metric} distance: statistic {res.statistic:.6g}, "
        f"p = {res.p_value:.4g} ({res.n_permutations} {how})"
    )
    if out is None:
        return None
    target = out / f"{args.name or 'compare'}_test.json"
    record = {
        "groups": members,
        "metric": args.metric,
        "order": order,
        "statistic": res.statistic,
        "p_value": res.p_value,
        "n_permutations": res.n_permutations,
        "exact": res.exact,
        "seed": args.seed,
        "labels": members[names[0]] + members[names[1]],
        "distances": res.distances.tolist(),
    }
    atomic_write_text(target, json.dumps(record, indent=2) + "\n")
    return target


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
        if args.labels:
            raise UserError(f"--labels must be distinct; got {labels}")
        raise UserError(
            f"the files' names label them and must be distinct; got {labels}: give --labels"
        )
    if args.groups is not None and not args.test:
        raise UserError("--groups applies with --test")
    barcodes = {label: load_barcode(path) for label, path in zip(labels, args.barcodes)}
    test_file = _run_test(args, labels, barcodes, None if old_form else out) if args.test else None
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
        print_written(targets + ([test_file] if test_file is not None else []))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand to ``sub``."""
    c = add_command(
        sub,
        "compare",
        _cmd_compare,
        help="overlay the death distributions of several barcodes; test two groups",
        description=(
            "Draw the death distributions of several barcode files in one figure; with --test, "
            "a permutation test between two groups of them."
        ),
        epilog=_COMPARE_EPILOG,
    )
    c.add_argument("barcodes", nargs="+", help="barcode .npz files (topo-neurons barcode)")
    c.add_argument("--labels", nargs="+", help="one label per file (default: file names)")
    c.add_argument("--style", choices=("ecdf", "hist"), default="ecdf", help="default ecdf")
    c.add_argument(
        "--test",
        action="store_true",
        help="permutation test between the two --groups (printed, and NAME_test.json)",
    )
    c.add_argument("--groups", nargs="+", help="with --test: one group name per file, two groups")
    c.add_argument(
        "--metric",
        choices=("wasserstein", "bottleneck"),
        default="wasserstein",
        help="distance of --test (default wasserstein)",
    )
    c.add_argument("--order", type=float, default=1.0, help="Wasserstein order (default 1)")
    c.add_argument(
        "--permutations",
        type=positive_int,
        default=999,
        help="random relabellings, or every split where there are fewer (default 999)",
    )
    c.add_argument("--seed", type=int, default=0, help="seed of the relabellings (default 0)")
    add_outputs(c, old_form="FIGURE", name_default="compare")
