"""The ``topo-neurons`` command.

One module per subcommand: :mod:`.analyse`, :mod:`.barcode`, :mod:`.compare`, :mod:`.fold`
here, and ``reproduce`` registered from :mod:`topo_neurons.experiments._cli` (it drives the paper's
harness, which lives with the experiments). Shared pieces have their own modules:
:mod:`._errors` (the one :class:`UserError`), :mod:`._io` (``--out``, arrays, barcode files,
figures) and :mod:`._load` (model, weights, data, sampling).

User errors — :class:`UserError` (bad paths, shapes, names, options) — end with one line on
stderr and exit status 2, never a traceback. Anything else (``TypeError``, ``KeyError``, …) is
a bug in the toolkit and shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._errors import UserError

__all__ = ["UserError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from .. import __version__
    from ..experiments import _cli as _cli_experiments
    from . import analyse, barcode, compare, fold

    parser = argparse.ArgumentParser(
        prog="topo-neurons",
        description="Topology of a neural network's neurons: barcodes, redundancy reports, "
        "and the experiments of 'Decorrelating neurons using persistence'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (analyse, barcode, compare, fold):
        command.register(sub)
    _cli_experiments.register(sub)
    # reproduce's options are validated by the library (ValueError naming the option).
    sub.choices["reproduce"].set_defaults(user_errors=(ValueError,))
    return parser


def _user_error_types(args: argparse.Namespace) -> tuple[type[BaseException], ...]:
    """:class:`UserError`, plus what a subcommand declares as its user errors.

    ``reproduce`` validates its options in the library (``ValueError`` naming the option and
    the valid values); it declares ``user_errors=(ValueError,)`` on its parser.
    """
    return (UserError, *getattr(args, "user_errors", ()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``topo-neurons``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except _user_error_types(args) as exc:
        msg = " ".join(str(exc).split())  # one line
        print(f"topo-neurons {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"topo-neurons {args.command}: interrupted", file=sys.stderr)
        return 130
