"""Issue 21: tile threads run MKL on one thread each, and rows of a triangle are dealt evenly.

References: OpenMP's own per-thread count (``omp_get_max_threads`` of the libgomp torch loads),
the work of each chunk counted by hand, and the single-threaded dense path (bitwise).
"""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import topo_neurons as tn
from topo_neurons._threads import deal, one_blas_thread, one_blas_thread_here


def _omp_max_threads() -> int:
    try:
        return int(ctypes.CDLL(None).omp_get_max_threads())
    except AttributeError:  # pragma: no cover - torch built without libgomp
        pytest.skip("no OpenMP runtime exported by this torch build")


def test_a_pool_thread_runs_openmp_on_one_thread_only_after_setting_it_itself():
    with one_blas_thread():
        with ThreadPoolExecutor(1, initializer=one_blas_thread_here) as fixed:
            assert fixed.submit(_omp_max_threads).result() == 1
        if (os.cpu_count() or 1) > 1 and "OMP_NUM_THREADS" not in os.environ:
            with ThreadPoolExecutor(1) as plain:  # the fault: a fresh thread has its own default
                assert plain.submit(_omp_max_threads).result() > 1


@pytest.mark.parametrize("nb", [1, 2, 3, 4, 5, 16, 17, 40])
@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_rows_of_a_triangle_are_dealt_to_equal_work(nb, workers):
    chunks = deal(list(range(nb)), workers)
    assert sorted(x for c in chunks for x in c) == list(range(nb))
    work = [sum(nb - a for a in c) for c in chunks]
    # Snake order: every pair of rounds gives each chunk the same total, so chunks differ by
    # at most one round's spread (the longest row minus the shortest of a round).
    assert max(work) - min(work) <= workers
    if workers == 2 and nb == 4:
        assert work == [5, 5]  # round-robin gave rows {0, 2} and {1, 3}, or 7 and 3 tiles


def test_the_dense_path_is_the_same_on_one_and_two_threads():
    A = np.random.default_rng(2).standard_normal((64, 1300)).astype(np.float32)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tn.correlation_dissimilarity(A)
        torch.set_num_threads(2)
        two = tn.correlation_dissimilarity(A)
    finally:
        torch.set_num_threads(saved)
    # Another thread count is another computation: equal to rounding (here it is bitwise).
    np.testing.assert_allclose(one, two, rtol=0, atol=1e-6)
