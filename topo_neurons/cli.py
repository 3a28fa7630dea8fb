"""The ``topo-neurons`` command.

Each family of subcommands lives beside the code it drives and registers itself here:
``topo_neurons._cli_analysis`` (``analyse``, ``barcode``, ``compare``) and
``topo_neurons.experiments._cli`` (``reproduce``). User errors — the toolkit's own
:class:`UserError` (bad paths, shapes, names, options) — end with one line on stderr and exit
status 2, never a traceback. Anything else (``TypeError``, ``KeyError``, …) is a bug in the
toolkit and shows its traceback (exit status 1).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["UserError", "build_parser", "main"]


class UserError(ValueError):
    """An error in what the user asked for: reported as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from . import __version__, _cli_analysis
    from .experiments import _cli as _cli_experiments

    parser = argparse.ArgumentParser(
        prog="topo-neurons",
        description="Topology of a neural network's neurons: barcodes, redundancy reports, "
        "and the experiments of 'Decorrelating neurons using persistence'.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _cli_analysis.register(sub)
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


if __name__ == "__main__":  # pragma: no cover - ``python -m topo_neurons.cli``
    # Run the package's module, not this ``__main__`` copy, so that ``UserError`` raised by the
    # subcommands is the class ``main`` catches.
    from topo_neurons.cli import main as _main

    sys.exit(_main())
