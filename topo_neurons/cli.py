"""The ``topo-neurons`` command.

Each family of subcommands lives beside the code it drives and registers itself here:
``topo_neurons._cli_analysis`` (``analyse``, ``barcode``, ``compare``) and
``topo_neurons.experiments._cli`` (``reproduce``). User errors (bad paths, shapes, names) end
with one line on stderr and exit status 2, never a traceback.
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``topo-neurons``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
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
