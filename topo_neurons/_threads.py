"""Keep torch's thread count across calls into OpenMP code that resets it.

numba's parallel loops (OpenMP threading layer) and giotto-ph set the OpenMP thread count of
the whole process, which torch shares: after them ``torch.get_num_threads()`` is the number of
cores again, whatever the user chose (e.g. one thread per worker process of a parallel sweep).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["keep_torch_threads"]


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore ``torch.get_num_threads()`` on exit (also after an exception)."""
    n = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
