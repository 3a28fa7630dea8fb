"""The fast CPU path of T1/T2 (issue 21): exact against independent references.

The CPU path of the native backend (``topo_neurons/_edges.py``) multiplies only the upper block
triangle of ``ZᵀZ`` (mirrored), searches the tree by Prim on the ranking keys computed on the
fly and differentiates the ``n − 1`` edge correlations by a fused kernel.
Each test compares it with a computation that shares none of that code: numpy's ``corrcoef``
with scipy's MST, autograd through the whole correlation matrix, ``gradcheck``, and the native
backend's Prim on an explicit dissimilarity matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import minimum_spanning_tree

import topo_neurons as tn
from topo_neurons._edges import tree_correlations
from topo_neurons.persistence._native import prim_mst
from topo_neurons.regularizers import _deaths, death_spread, edge_deaths, topological_redundancy

TOP = 1.0 + _deaths._RANK_SLACK

KINDS = ("abs", "sqrt")


def correlated(m: int, n: int, seed: int) -> np.ndarray:
    """Activations with a range of correlations (no |ρ| = 1, no ties)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, 4))
    return base @ rng.standard_normal((4, n)) + 0.8 * rng.standard_normal((m, n))


def scipy_deaths(A: np.ndarray, kind: str) -> np.ndarray:
    rho = np.corrcoef(A, rowvar=False)
    D = 1 - np.abs(rho) if kind == "abs" else np.sqrt(np.clip(1 - rho**2, 0, None))
    np.fill_diagonal(D, 0)
    assert (D[np.triu_indices_from(D, 1)] > 0).all()  # scipy reads 0 as "no edge"
    mst = minimum_spanning_tree(D).toarray()
    return np.sort(mst[mst > 0])


def full_matrix_loss(A: torch.Tensor, kind: str, which: str) -> torch.Tensor:
    """T1 or T2 by autograd through the whole n × n dissimilarity matrix (giotto-ph edges)."""
    d = tn.differentiable_deaths(tn.correlation_dissimilarity(A, kind), backend="giotto")
    if which == "t1":
        return (1 - d).sum()
    return 0.5 * d.std(unbiased=False) - 0.5 * d.mean()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [3, 255, 257, 700])
def test_cpu_tree_deaths_match_scipy_over_several_gram_blocks(kind, n):
    """n around and beyond the 256-neuron block rows of the half Gram GEMM."""
    A = correlated(40, n, n)
    d, edges = edge_deaths(torch.from_numpy(A), kind)
    np.testing.assert_allclose(d.numpy(), scipy_deaths(A, kind), rtol=1e-10, atol=1e-13)
    assert edges.dtype == torch.long and edges.shape == (n - 1, 2)
    assert bool((edges[:, 0] < edges[:, 1]).all())
    # Each death is the dissimilarity of its own edge (read from numpy's corrcoef).
    rho = np.corrcoef(A, rowvar=False)[edges[:, 0].numpy(), edges[:, 1].numpy()]
    ref = 1 - np.abs(rho) if kind == "abs" else np.sqrt(np.clip(1 - rho**2, 0, None))
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-10, atol=1e-13)
    # A spanning tree: n − 1 edges joining all n neurons.
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in edges.tolist():
        ri, rj = find(i), find(j)
        assert ri != rj
        parent[ri] = rj


@pytest.mark.parametrize("which", ["t1", "t2"])
@pytest.mark.parametrize("kind", KINDS)
def test_cpu_path_value_and_gradient_equal_autograd_through_the_full_matrix(kind, which):
    A0 = torch.from_numpy(correlated(48, 300, 7))
    A = A0.clone().requires_grad_()
    B = A0.clone().requires_grad_()
    loss = topological_redundancy(A, kind) if which == "t1" else death_spread(A, 0.5, kind)
    ref = full_matrix_loss(B, kind, which)
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-11)
    (g,) = torch.autograd.grad(loss, A)
    (g_ref,) = torch.autograd.grad(ref, B)
    assert g.shape == A.shape and g.is_contiguous() and g.dtype == torch.float64
    scale = float(g_ref.abs().max())
    np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("kind", KINDS)
def test_cpu_path_gradcheck_across_two_gram_blocks(kind):
    """gradcheck (float64) on 260 neurons: two block rows of the Gram GEMM and their mirror.

    The checked input is 12 columns, 6 from each block row; the other neurons are constants
    of the function (the tree still spans all 260).
    """
    A = torch.from_numpy(correlated(7, 260, 3))
    cols = torch.tensor([0, 1, 2, 100, 200, 255, 256, 257, 258, 259, 150, 50])
    X = A[:, cols].clone().requires_grad_()

    def loss(x: torch.Tensor) -> torch.Tensor:
        full = A.index_copy(1, cols, x)
        return topological_redundancy(full, kind, "mean")

    assert torch.autograd.gradcheck(loss, (X,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_cached_edges_on_the_cpu_path_equal_the_searched_tree(kind):
    """The refresh_every path (given edges: one dot product each) against the search's ρ."""
    A0 = torch.from_numpy(correlated(30, 290, 11))
    A, B = A0.clone().requires_grad_(), A0.clone().requires_grad_()
    d, edges = edge_deaths(A, kind)
    d_given, same = edge_deaths(B, kind, edges=edges)
    assert torch.equal(same, edges)
    np.testing.assert_allclose(d_given.detach().numpy(), d.detach().numpy(), rtol=0, atol=1e-14)
    w = torch.linspace(0.5, 1.5, d.numel(), dtype=d.dtype)
    (g,) = torch.autograd.grad((w * d).sum(), A)
    (g_given,) = torch.autograd.grad((w * d_given).sum(), B)
    np.testing.assert_allclose(g_given.numpy(), g.numpy(), rtol=0, atol=1e-13)


def test_prim_on_gram_keys_breaks_ties_as_the_native_prim_on_the_ranking_matrix():
    """Exact ties (every ρ a multiple of 1/16): the same edges as the native backend's Prim on
    the explicit ranking matrix ``(1 + slack) − |ρ|``, edge for edge, over several block rows.

    Rows of ±1/4 and 0 entries have dot products that are exact in float64, so the Gram matrix
    does not depend on the GEMM's order of summation and both Prims see the same keys; both
    take the first parent and the smallest vertex among equal candidates.
    """
    rng = np.random.default_rng(5)
    Zt = rng.choice([-0.25, 0.0, 0.25], size=(300, 16)).astype(np.float64)
    edges, rho = tree_correlations(Zt, 128, TOP)
    G = Zt @ Zt.T
    D = np.ascontiguousarray(TOP - np.abs(G))
    np.fill_diagonal(D, 0.0)
    assert len(np.unique(D[np.triu_indices(300, 1)])) < 20  # many ties
    ref, _ = prim_mst(D, diag_tol=1.0)
    ref = np.sort(ref, axis=1)
    key = D[ref[:, 0], ref[:, 1]]
    ref = ref[np.lexsort((ref[:, 1], ref[:, 0], key))]
    np.testing.assert_array_equal(edges, ref)
    np.testing.assert_array_equal(rho, G[edges[:, 0], edges[:, 1]])


def test_cpu_path_gives_the_ranking_matrix_tree_deaths():
    """Random float32 data: the deaths of the native backend on the explicit ranking matrix
    (the path before issue 21), to rounding (near-ties may pick other tied edges)."""
    A = torch.from_numpy(correlated(64, 600, 21)).float()
    Zt, _, _ = _deaths._normalized_rows(A, torch.zeros(600, dtype=torch.bool))
    _, rho = tree_correlations(Zt.numpy(), 128, TOP)
    ref = _deaths.mst_edges(_deaths._ranking_matrix(Zt), backend="native").numpy()
    ref_rho = (Zt[ref[:, 0]] * Zt[ref[:, 1]]).sum(dim=1).numpy()
    np.testing.assert_allclose(
        np.sort(1 - np.abs(rho)), np.sort(1 - np.abs(ref_rho)), rtol=0, atol=1e-6
    )


def test_cpu_path_float32_agrees_with_float64_and_keeps_its_dtype():
    A = correlated(64, 400, 4)
    A32 = torch.from_numpy(A).float().requires_grad_()
    t32 = topological_redundancy(A32)
    assert t32.dtype == torch.float32
    np.testing.assert_allclose(t32.item(), np.sum(1 - scipy_deaths(A, "abs")), rtol=1e-5)
    (g,) = torch.autograd.grad(t32, A32)
    assert g.dtype == torch.float32 and g.is_contiguous()
    A64 = torch.from_numpy(A).requires_grad_()
    (g64,) = torch.autograd.grad(topological_redundancy(A64), A64)
    np.testing.assert_allclose(g.numpy(), g64.numpy(), rtol=0, atol=1e-4 * float(g64.abs().max()))


def test_cpu_path_constant_neurons_and_a_non_contiguous_input():
    """Constant neurons: unit deaths, zero gradient; a transposed view is read, not modified."""
    B = torch.from_numpy(np.ascontiguousarray(correlated(30, 280, 9).T))  # (n, m)
    A = B.T.clone()  # a fresh (m, n) leaf
    A[:, 3] = 2.0
    A[:, 270] = 0.0
    view = A.detach().clone().T.contiguous().T  # (m, n), not contiguous
    before = view.clone()
    d_view, e_view = edge_deaths(view)
    assert torch.equal(view, before)
    A.requires_grad_()
    d, edges = edge_deaths(A)
    assert torch.equal(edges, e_view) and torch.equal(d.detach(), d_view)
    touches = ((edges == 3) | (edges == 270)).any(dim=1)
    assert torch.equal(d[touches].detach(), torch.ones(int(touches.sum()), dtype=A.dtype))
    (g,) = torch.autograd.grad((1 - d).sum(), A)
    assert torch.equal(g[:, [3, 270]], torch.zeros(30, 2, dtype=A.dtype))
    keep = [c for c in range(280) if c not in (3, 270)]
    np.testing.assert_allclose(
        d[~touches].detach().numpy(), scipy_deaths(A.detach().numpy()[:, keep], "abs"), rtol=1e-10
    )
