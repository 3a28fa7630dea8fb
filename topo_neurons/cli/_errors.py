"""The command's one error type and the helpers that raise or report it.

:class:`UserError` is an error in what the user asked for (a bad path, shape, name or option):
``topo-neurons`` prints it as one line on stderr with exit status 2, never a traceback. It is
defined here only, so every subcommand raises the very class :func:`topo_neurons.cli.main`
catches (also under ``python -m topo_neurons.cli``, which runs ``cli/__main__.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

__all__ = ["UserError", "library_user_errors", "note", "progress_enabled"]


class UserError(ValueError):
    """An error in what the user asked for: reported as one line, exit status 2."""


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


@contextlib.contextmanager
def library_user_errors() -> Iterator[None]:
    """Turn the library's input errors into :class:`UserError` (one line, exit status 2).

    ``ValueError`` is how the library reports bad input (a layer name, NaN activations, a
    matrix that is not a distance); ``MemoryError`` is the ``n × n`` guard's refusal. Other
    exceptions are bugs and pass through with their traceback.
    """
    try:
        yield
    except UserError:
        raise
    except (ValueError, MemoryError) as exc:
        raise UserError(" ".join(str(exc).split()) or type(exc).__name__) from exc


def note(command: str, text: str) -> None:
    print(f"topo-neurons {command}: {text}", file=sys.stderr)
