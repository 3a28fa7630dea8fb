"""Torch's thread count: kept across foreign OpenMP code, or lowered to one for tile threads.

Two context managers, two different needs (one module so that all thread-count handling sits
together):

* :func:`keep_torch_threads` *restores* the count that code outside torch changed behind its
  back: numba's parallel loops (OpenMP threading layer) and giotto-ph set the OpenMP thread count
  of the whole process, which torch shares, so after them ``torch.get_num_threads()`` is the
  number of cores again, whatever the user chose (e.g. one thread per worker process of a
  parallel sweep). It is a plain save/restore around one call.
* :func:`one_blas_thread` *lowers* the count to one on purpose while our own Python threads run
  small GEMM tiles (:func:`run_on_tile_threads`), and yields the count those threads may use.
  Several threads may hold it at once, so it counts its users: the first saves the count and the
  last restores it (a plain save/restore per caller would let an early leaver restore too soon).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = [
    "deal",
    "keep_torch_threads",
    "one_blas_thread",
    "one_blas_thread_here",
    "run_on_tile_threads",
]


@contextlib.contextmanager
def keep_torch_threads() -> Iterator[None]:
    """Restore ``torch.get_num_threads()`` on exit (also after an exception)."""
    n = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved = 1


def one_blas_thread_here() -> None:
    """Give the calling thread's own BLAS calls one thread (a thread-pool initializer).

    OpenMP's thread count is a per-thread setting: a thread started after
    ``torch.set_num_threads(1)`` in the main thread still runs MKL on one OpenMP thread per
    core (measured: a 2048² GEMM in a fresh thread took half the main thread's time under
    ``set_num_threads(1)``, i.e. two threads), so tile threads running side by side would
    oversubscribe the cores. ``torch.set_num_threads(1)`` called in the thread itself sets it
    there; call it only while :func:`one_blas_thread` holds the global count at one.
    """
    torch.set_num_threads(1)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[int]:
    """Run the block with one torch/MKL thread; yield the thread count to use for tiles.

    Small GEMMs (one tile) lose to MKL's own threading (measured 3–5× slower with two MKL
    threads than with one on this 2-core machine under load); the tiles are spread over
    threads instead. Re-entrant across threads: the first caller saves the count and the last
    one restores it.
    """
    global _blas_users, _blas_saved
    with _blas_lock:
        if _blas_users == 0:
            _blas_saved = torch.get_num_threads()
        _blas_users += 1
        workers = _blas_saved
        torch.set_num_threads(1)  # also this thread's own OpenMP count (see blas_thread_here)
    try:
        yield workers
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and torch.get_num_threads() != _blas_saved:
                torch.set_num_threads(_blas_saved)


def deal(items: Sequence[int], workers: int) -> list[list[int]]:
    """``items``, in decreasing order of cost, dealt to ``workers`` chunks back and forth.

    Round ``r`` gives one item to each chunk, in chunk order for even ``r`` and in reverse for
    odd ``r`` (a snake), so chunks of rows ``0, 1, 2, …`` of a triangle (row ``a`` holding
    ``nb − a`` tiles) carry equal work, where plain round-robin gives the first chunk the
    longest row of every round.
    """
    chunks: list[list[int]] = [[] for _ in range(workers)]
    for t, item in enumerate(items):
        r, w = divmod(t, workers)
        chunks[w if r % 2 == 0 else workers - 1 - w].append(item)
    return chunks


def run_on_tile_threads(job: Callable[[Sequence[int]], None], items: Sequence[int]) -> None:
    """``job(chunk)`` over ``items`` dealt to ``torch.get_num_threads()`` threads (:func:`deal`).

    Each chunk runs in a thread of a shared pool with one MKL thread (:func:`one_blas_thread`);
    the compiled tile kernels release the GIL. One chunk runs in the calling thread.

    Parameters
    ----------
    job : callable
        Called once per chunk with a sub-sequence of ``items``.
    items : sequence of int
        Work items (e.g. tile-row indices), in decreasing order of cost.
    """
    global _pool
    with one_blas_thread() as workers:
        workers = max(1, min(workers, len(items)))
        chunks = deal(items, workers)
        if workers == 1:
            job(chunks[0])
            return
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=max(2, os.cpu_count() or 2), initializer=one_blas_thread_here
                )
            pool = _pool
        futures = [pool.submit(job, c) for c in chunks[1:]]
        job(chunks[0])
        for f in futures:
            f.result()
