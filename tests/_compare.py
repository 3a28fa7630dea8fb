"""Comparisons of results that two different computations produce, robust on any CPU.

Two code paths (or two BLAS builds, CPUs, thread counts) that compute the same matrix round its
entries differently. The deaths then agree to rounding, but where two candidate edges are tied to
rounding either may enter the minimum spanning tree: the trees can differ by such flipped
near-ties and both be right. These helpers accept exactly that and nothing more. Bitwise
comparisons stay where both sides run the same calls (e.g. the dense path and the tiled engine
share every GEMM call, see ``docs/guarantees.md``).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

__all__ = ["assert_same_edges", "assert_same_tree", "near_ties", "pairs"]


def pairs(edges) -> set[tuple[int, int]]:
    """Edges ``(k, 2)`` (numpy, torch or a collection of pairs) as a set of ``(min, max)``."""
    if hasattr(edges, "detach"):
        edges = edges.detach().cpu().numpy()
    return {(min(int(a), int(b)), max(int(a), int(b))) for a, b in edges}


def _weights(edges: set[tuple[int, int]], D) -> np.ndarray:
    D = np.asarray(D.detach().cpu() if hasattr(D, "detach") else D, dtype=np.float64)
    return np.sort(np.array([D[i, j] for i, j in edges], dtype=np.float64))


def assert_same_edges(a, b, D, atol: float) -> int:
    """Edge sets ``a`` and ``b`` equal up to swapped near-ties of ``D``; returns how many differ.

    The edges in one set only must pair up, by sorted weight in ``D``, with the edges in the
    other set only, each pair within ``atol``: equal where the weights are separated by more
    than ``atol``, any choice among edges tied to ``atol``.
    """
    a, b = pairs(a), pairs(b)
    assert len(a) == len(b), f"{len(a)} edges against {len(b)}"
    only_a, only_b = a - b, b - a
    wa, wb = _weights(only_a, D), _weights(only_b, D)
    assert np.all(np.abs(wa - wb) <= atol), (
        f"edges {sorted(only_a)} (weights {wa}) and {sorted(only_b)} (weights {wb}) differ "
        f"by more than flipped near-ties (atol={atol})"
    )
    return len(only_a)


def assert_same_tree(a, b, D, atol: float) -> int:
    """``a`` and ``b`` are spanning trees of the ``n`` points of ``D`` with the same weights and
    the same edges up to swapped near-ties (see :func:`assert_same_edges`).

    Returns how many edges differ (0 where ``D`` has no near-tie that matters).
    """
    n = np.asarray(D.shape)[0]
    for edges in (pairs(a), pairs(b)):
        assert len(edges) == n - 1, f"{len(edges)} edges for {n} points"
        g = np.zeros((n, n), bool)
        for i, j in edges:
            g[i, j] = True
        assert connected_components(g, directed=False)[0] == 1, "not a spanning tree"
    np.testing.assert_allclose(_weights(pairs(a), D), _weights(pairs(b), D), rtol=0, atol=atol)
    return assert_same_edges(a, b, D, atol)


def near_ties(values, threshold: float, atol: float) -> int:
    """How many of ``values`` lie within ``atol`` of ``threshold`` (a count by a threshold may
    differ by that many between two computations)."""
    return int(np.sum(np.abs(np.asarray(values, dtype=np.float64) - threshold) <= atol))
