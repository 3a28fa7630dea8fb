"""The parts of the subcommands' parsers they share: the parser itself and the output options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = [
    "add_backend",
    "add_command",
    "add_kind",
    "add_model_and_data",
    "add_outputs",
    "positive_int",
]


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    *,
    help: str,
    description: str,
    epilog: str,
) -> argparse.ArgumentParser:
    """The parser of subcommand ``name``, which ``run`` executes.

    Its description and examples (``epilog``) keep their line breaks; ``run(args)`` returns
    the exit status.
    """
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
    return parser


def add_kind(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--kind``: the correlation dissimilarity, one of ``topo_neurons.correlation.KINDS``."""
    from ..correlation import KINDS

    parser.add_argument("--kind", choices=KINDS, default="abs", help=help)


def add_backend(parser: argparse.ArgumentParser) -> None:
    """``--backend``: the persistence backend, one of ``topo_neurons.persistence.BACKENDS``."""
    from ..persistence import BACKENDS

    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="persistence backend")


def add_model_and_data(parser: argparse.ArgumentParser) -> None:
    """The model (``--model`` or ``--torchscript``, ``--weights``) and the data (``--data``,
    ``--key``, ``--standardize``, ``--limit``) options, as ``analyse`` and ``fold`` share them
    (read by ``cli._load.load_model`` / ``load_data``)."""
    from ._load import DATASETS

    src = parser.add_argument_group("model (one of)")
    src.add_argument(
        "--model", metavar="FACTORY", help="package.module:function or file.py:function"
    )
    src.add_argument(
        "--torchscript", metavar="FILE", help="TorchScript nn.Sequential (torch.jit.save)"
    )
    parser.add_argument(
        "--weights", metavar="FILE", help="state dict for --model (torch.load weights_only)"
    )
    parser.add_argument(
        "--data", required=True, metavar="DATA", help=f"{', '.join(DATASETS)} or a .npy/.npz path"
    )
    parser.add_argument("--key", help="array name inside an .npz data file")
    parser.add_argument("--standardize", action="store_true", help="z-score each input feature")
    parser.add_argument("--limit", type=int, metavar="M", help="use only the first M examples")


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
