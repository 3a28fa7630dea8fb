"""Review of issue 21's tiled engine: regression tests of the defects found.

References: the dense path's deaths (``zero_persistence(correlation_dissimilarity(A))``,
bitwise on the same machine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import topo_neurons as tn
from topo_neurons.correlation import gemm_panels
from topo_neurons.persistence import _panels


def _dense_deaths(A, kind="abs"):
    return tn.zero_persistence(tn.correlation_dissimilarity(A, kind)).deaths


@pytest.mark.parametrize("layout", ["negative_strides", "big_endian"])
def test_activations_with_negative_strides_or_foreign_byte_order_are_accepted(layout):
    # The dense path takes them; the in-place panels' memory guard used to crash on them
    # (torch.as_tensor refuses negative strides and non-native byte order).
    B = np.random.default_rng(0).standard_normal((20, 512)).astype(np.float32)
    A = B[:, ::-1] if layout == "negative_strides" else B.astype(">f4")
    bc = tn.correlation_persistence(A, block_size=256, scheduler="sync")
    np.testing.assert_array_equal(bc.deaths, _dense_deaths(A))
    np.testing.assert_array_equal(A, B[:, ::-1] if layout == "negative_strides" else B)


@pytest.mark.parametrize("source", ["numpy_view", "reversed_numpy_view", "tensor_view"])
def test_panels_guard_copies_z_when_it_shares_the_callers_memory(source):
    # The guard's numpy branch (any strides) and tensor branch both see the overlap: the
    # caller's values are never reordered, and the panels equal gemm_panels.
    Z = torch.from_numpy(np.random.default_rng(1).standard_normal((5, 512)).astype(np.float32))
    before = Z.clone()
    src = {
        "numpy_view": lambda: Z.numpy(),
        "reversed_numpy_view": lambda: Z.numpy()[::-1, ::-1],
        "tensor_view": lambda: Z[1:],
    }[source]()
    P = _panels.panels_of(Z, src)
    np.testing.assert_array_equal(Z.numpy(), before.numpy())
    np.testing.assert_array_equal(P, gemm_panels(before).numpy())


def _kruskal_lexsort(D):
    """The MST of ``D`` under the strict order ``(d, i, j)``: Kruskal on ``np.lexsort``."""
    n = D.shape[0]
    i, j = np.triu_indices(n, 1)
    w = D[i, j]
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = []
    for e in np.lexsort((j, i, w)):
        x, y = find(int(i[e])), find(int(j[e]))
        if x != y:
            parent[max(x, y)] = min(x, y)
            edges.append((int(i[e]), int(j[e])))
            if len(edges) == n - 1:
                break
    return sorted(edges)


@pytest.mark.parametrize(
    ("n", "m", "block_size", "kind", "dtype", "constant"),
    [
        (700, 3, 256, "abs", np.float32, "uncorrelated"),  # integer activations: many ties
        (513, 4, 256, "sqrt", np.float64, "uncorrelated"),  # a last block of one neuron
        (600, 5, 512, "abs", np.float64, "drop"),
        (300, 2, 256, "sqrt", np.float32, "uncorrelated"),  # two examples: |ρ| = 1 everywhere
    ],
)
def test_tiled_edges_under_ties_are_the_lexsort_kruskal_tree(
    n, m, block_size, kind, dtype, constant
):
    # Beyond equal deaths: the edges are the unique MST under (d, i, j), which the anchor
    # filter, the 3-way pair Kruskal and the tie settling must all respect.
    rng = np.random.default_rng(n + m)
    A = rng.integers(0, 3, size=(m, n)).astype(dtype)
    A[:, rng.integers(0, n, 8)] = 2.0  # constant neurons
    A[:, 5] = -3 * A[:, n - 2]  # a duplicate across blocks (d = 0)
    bc = tn.correlation_persistence(A, kind, constant, block_size=block_size, scheduler="threads")
    D = np.asarray(tn.correlation_dissimilarity(A, kind, constant))
    np.testing.assert_array_equal(bc.deaths, tn.zero_persistence(D).deaths)
    assert sorted(map(tuple, bc.edges.tolist())) == _kruskal_lexsort(D)


def _merge_input(rng, run, total, index_dtype):
    """Eight inputs of a merge, each ascending ``(w, a, b)``, concatenated; ``run`` of their
    edges weigh 0 (e.g. duplicated neurons), a tenth of the total (below edge_order's 1/8)."""
    parts = []
    for _ in range(8):
        k = total // 8
        w = rng.random(k).astype(np.float32)
        w[: run // 8] = 0.0
        a = rng.integers(0, 2**30, k)
        b = a + 1 + rng.integers(0, 1000, k)
        o = np.lexsort((b, a, w))
        parts.append((a[o].astype(index_dtype), b[o].astype(index_dtype), w[o]))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_edge_order_sorts_a_long_run_of_equal_weights_like_lexsort(index_dtype):
    # A long run of ties below 1/8 of the edges went to the insertion sort: quadratic in the
    # run (measured 0.9 s for a run of 20 000, 5.2 s for 60 000; a million-neuron merge can
    # carry hundreds of thousands of zero weights). Long runs now take one mergesort on a
    # combined key; the order must stay exactly (w, a, b). (Speed is not asserted here.)
    from topo_neurons.persistence._tiled_kernels import edge_order

    rng = np.random.default_rng(0)
    a, b, w = _merge_input(rng, 40_000, 400_000, index_dtype)
    np.testing.assert_array_equal(edge_order(a, b, w), np.lexsort((b, a, w)))
