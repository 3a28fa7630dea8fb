"""The parts of the subcommands' parsers they share: the parser itself and the output options."""

from __future__ import annotations

import argparse

__all__ = ["add_command", "add_outputs", "positive_int"]


def add_command(
    sub: argparse._SubParsersAction, name: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A subcommand's parser whose description and examples keep their line breaks."""
    return sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_outputs(parser: argparse.ArgumentParser, *, old_form: str, name_default: str) -> None:
    """``--out DIR`` (the output directory; ``old_form`` names the old file form), ``--name``,
    ``--formats``, ``--title`` and ``--quiet``, as ``barcode`` and ``compare`` share them."""
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help=f"output directory (created; old form: {old_form})",
    )
    parser.add_argument("--name", help=f"file name stem of the outputs (default {name_default})")
    parser.add_argument(
        "--formats", default="png", help="figure formats, e.g. png,pdf (default png)"
    )
    parser.add_argument("--title", help="figure title")
    parser.add_argument("--quiet", action="store_true", help="print nothing")


def positive_int(text: str) -> int:
    """``argparse`` type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
