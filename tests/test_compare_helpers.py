"""The helpers that compare trees of two computations (tests/_compare.py) accept a flipped
near-tie and nothing more."""

from __future__ import annotations

import numpy as np
import pytest
from _compare import assert_same_edges, assert_same_tree, near_ties

import topo_neurons as tn


def _square(eps: float) -> np.ndarray:
    """Four points: the path 0–1–2 and point 3 at 0.5 from both 0 and 2 (plus ``eps`` to 2)."""
    D = np.full((4, 4), 0.9)
    D[0, 1] = D[1, 2] = 0.1
    D[0, 3], D[2, 3] = 0.5, 0.5 + eps
    D = np.minimum(D, D.T)
    np.fill_diagonal(D, 0.0)
    return D


def test_a_flipped_near_tie_is_accepted_and_counted():
    D = _square(1e-12)
    found = tn.zero_persistence(D).edges  # attaches 3 to 0
    flipped = [(0, 1), (1, 2), (2, 3)]
    assert assert_same_tree(found, flipped, D, atol=1e-9) == 1
    assert assert_same_tree(found, found, D, atol=0.0) == 0


def test_a_different_tree_or_a_non_tree_is_rejected():
    D = _square(1e-3)  # separated by more than the tolerance: only one minimum tree
    found = tn.zero_persistence(D).edges
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        assert_same_tree(found, [(0, 1), (1, 2), (2, 3)], D, atol=1e-9)
    with pytest.raises(AssertionError, match="more than flipped near-ties"):
        assert_same_edges(found, [(0, 1), (1, 2), (2, 3)], D, atol=1e-9)
    with pytest.raises(AssertionError, match="not a spanning tree"):
        assert_same_tree(found, [(0, 1), (0, 2), (1, 2)], D, atol=1e-9)  # a cycle


def test_near_ties_counts_values_within_the_tolerance_of_a_threshold():
    assert near_ties([0.1, 0.3 - 1e-12, 0.3 + 1e-12, 0.5], 0.3, atol=1e-9) == 2
    assert near_ties([0.1, 0.5], 0.3, atol=1e-9) == 0
