"""One torch thread for a while: a worker of the parallel sweep, or figures trained beside it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["one_torch_thread"]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``; the previous count is restored on exit.

    Each worker process of the parallel sweep trains with one thread; the barcode figure's
    networks are retrained the same way, so that they are the sweep's runs.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
