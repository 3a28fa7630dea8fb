"""The torch backend: the exact Borůvka MST in torch operations (CPU tensors here; the CUDA
mirror of these tests is in ``tests/test_gpu.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import minimum_spanning_tree

import topo_neurons as tn
from topo_neurons.persistence import differentiable_deaths, mst_edges
from topo_neurons.persistence._torch_mst import dense_row_minima, rounds_for, torch_mst_dense


def kruskal_reference(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kruskal in plain Python under the strict order (d, i, j) on the upper triangle."""
    n = D.shape[0]
    pairs = sorted((float(D[i, j]), i, j) for i in range(n) for j in range(i + 1, n))
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges, deaths = [], []
    for d, i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
            edges.append((i, j))
            deaths.append(d)
    return np.array(edges, dtype=np.int64).reshape(-1, 2), np.array(deaths, dtype=D.dtype)


def symmetric(X: np.ndarray) -> np.ndarray:
    U = np.triu(X, 1)
    return U + U.T


def scipy_weight(D: np.ndarray) -> float:
    # scipy drops zero entries (no edge): shift by 1 so that every pair is an edge.
    n = D.shape[0]
    return float(minimum_spanning_tree(np.triu(D + 1.0, 1)).sum()) - (n - 1)


def cases(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "random": symmetric(rng.random((50, 50))),
        "integer ties": symmetric(rng.integers(0, 3, (60, 60)).astype(np.float64)),
        "all equal": symmetric(np.full((33, 33), 0.5)),
        "all zero": np.zeros((17, 17)),
        "float32": symmetric(rng.random((41, 41))).astype(np.float32),
    }


@pytest.mark.parametrize("name", ["random", "integer ties", "all equal", "all zero", "float32"])
def test_dense_edges_equal_kruskal_under_the_strict_order(name):
    D = cases(np.random.default_rng(3))[name]
    ref_e, ref_d = kruskal_reference(D)
    bc = tn.zero_persistence(D, backend="torch")
    assert bc.backend == "torch"
    np.testing.assert_array_equal(bc.edges, ref_e)
    np.testing.assert_array_equal(bc.deaths, ref_d)  # the same entries, gathered
    assert bc.deaths.dtype == D.dtype
    np.testing.assert_allclose(bc.deaths.sum(), scipy_weight(D), rtol=1e-6, atol=1e-9)
    # The same multiset of deaths as the native Prim (bit for bit: gathered from D).
    np.testing.assert_array_equal(bc.deaths, tn.zero_persistence(D, backend="native").deaths)


def test_dense_edges_equal_the_tiled_engine_on_activations_with_duplicates_and_constants():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((24, 300)).astype(np.float32)
    A[:, 10] = 2.0  # constant neurons: d = 1 to everything
    A[:, 11] = -1.0
    A[:, 50] = A[:, 3]  # duplicated and anti-duplicated neurons: d = 0 ties
    A[:, 51] = 1.0 - 3.0 * A[:, 3]
    A[:, 299] = A[:, 3]
    D = tn.correlation_dissimilarity(A)
    tiled = tn.correlation_persistence(A, block_size=256)
    bc = tn.zero_persistence(torch.from_numpy(D), backend="torch")
    np.testing.assert_array_equal(bc.edges, tiled.edges)
    np.testing.assert_array_equal(bc.deaths, tiled.deaths)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["abs", "sqrt"])
def test_from_activations_tiles_equal_the_tiled_engine_bit_for_bit(dtype, kind):
    rng = np.random.default_rng(11)
    A = rng.standard_normal((32, 700)).astype(dtype)
    A[:, 5] = 3.0
    A[:, 650] = 3.0  # two constant neurons: d = 1 between them too
    A[:, 100] = A[:, 7]
    A[:, 300] = -2.0 * A[:, 7] + 1.0
    ref = tn.correlation_persistence(A, kind, block_size=256)  # the CPU tiled engine
    for A_in in (A, torch.from_numpy(A)):
        bc = tn.correlation_persistence(A_in, kind, block_size=256, backend="torch")
        assert bc.backend == "torch" and bc.deaths.dtype == dtype
        np.testing.assert_array_equal(bc.edges, ref.edges)
        np.testing.assert_array_equal(bc.deaths, ref.deaths)
    dense = tn.correlation_persistence(A, kind, backend="torch")  # n ≤ 4096: dense rounds
    np.testing.assert_array_equal(dense.edges, ref.edges)
    np.testing.assert_array_equal(dense.deaths, ref.deaths)


def test_from_activations_with_integer_ties_and_drop_policy():
    rng = np.random.default_rng(5)
    A = rng.integers(0, 2, (6, 520)).astype(np.float64)  # many exactly equal correlations
    A[:, 17] = 1.0
    for constant in ("uncorrelated", "drop"):
        ref = tn.correlation_persistence(A, constant=constant, block_size=256)
        bc = tn.correlation_persistence(A, constant=constant, block_size=256, backend="torch")
        assert bc.n_points == ref.n_points
        np.testing.assert_array_equal(bc.edges, ref.edges)
        np.testing.assert_array_equal(bc.deaths, ref.deaths)


def test_row_chunks_and_symmetric_reads_give_the_same_tree():
    D = symmetric(np.random.default_rng(2).integers(0, 4, (45, 45)).astype(np.float32))
    Dt = torch.from_numpy(D)
    ref = torch_mst_dense(Dt)
    for sym in (False, True):
        fn = dense_row_minima(Dt, symmetric=sym, chunk_elems=7 * 45)  # 7-row chunks
        from topo_neurons.persistence._torch_mst import boruvka

        a, b, d = boruvka(45, fn, Dt.dtype, Dt.device)
        assert torch.equal(torch.stack([a, b], 1), ref[0]) and torch.equal(d, ref[1])


def test_upper_triangle_is_read_as_the_other_backends_do():
    # Asymmetric within the tolerance: every backend reads D[i, j], i < j.
    rng = np.random.default_rng(4)
    D = symmetric(rng.random((30, 30)))
    D = D + np.tril(rng.random((30, 30)) * 1e-12, -1)
    bc = tn.zero_persistence(D, backend="torch")
    ref_e, ref_d = kruskal_reference(D)
    np.testing.assert_array_equal(bc.edges, ref_e)
    np.testing.assert_array_equal(bc.deaths, ref_d)


@st.composite
def tied_matrices(draw):
    n = draw(st.integers(2, 24))
    levels = draw(st.integers(1, 4))
    vals = draw(
        st.lists(st.integers(0, levels), min_size=n * (n - 1) // 2, max_size=n * (n - 1) // 2)
    )
    D = np.zeros((n, n))
    D[np.triu_indices(n, 1)] = np.array(vals, dtype=np.float64) / levels
    return D + D.T


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tied_matrices())
def test_property_spanning_tree_deaths_weight_and_kruskal_edges(D):
    n = D.shape[0]
    edges, deaths = torch_mst_dense(torch.from_numpy(D))
    e, d = edges.numpy(), deaths.numpy()
    assert e.shape == (n - 1, 2) and np.all(e[:, 0] < e[:, 1])
    # A spanning tree: n − 1 edges joining all n vertices (no cycle).
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for i, j in e:
        ri, rj = find(i), find(j)
        assert ri != rj
        parent[ri] = rj
    np.testing.assert_array_equal(d, D[e[:, 0], e[:, 1]])
    np.testing.assert_allclose(d.sum(), scipy_weight(D), atol=1e-9)
    ref_e, ref_d = kruskal_reference(D)
    np.testing.assert_array_equal(e, ref_e)
    np.testing.assert_array_equal(d, ref_d)


def test_gradcheck_of_the_deaths_through_the_torch_backend():
    rng = np.random.default_rng(9)
    X = torch.tensor(symmetric(rng.random((8, 8))), dtype=torch.float64, requires_grad=True)

    iu = torch.triu_indices(8, 8, 1)

    def deaths(w):  # the upper triangle → a valid symmetric matrix with a zero diagonal
        S = torch.zeros(8, 8, dtype=w.dtype).index_put((iu[0], iu[1]), w)
        return differentiable_deaths(S + S.T, backend="torch")

    w = X.detach()[iu[0], iu[1]].clone().requires_grad_()
    assert torch.autograd.gradcheck(deaths, (w,), eps=1e-7, atol=1e-6)
    d = differentiable_deaths(X, backend="torch")
    d.sum().backward()
    e = mst_edges(X.detach(), backend="torch")
    expected = torch.zeros_like(X)
    expected[e[:, 0], e[:, 1]] = 1.0
    assert torch.equal(X.grad, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_are_kept(dtype):
    D = torch.tensor(symmetric(np.random.default_rng(1).random((12, 12))), dtype=dtype)
    edges, deaths = torch_mst_dense(D)
    assert deaths.dtype == dtype and deaths.device == D.device
    assert edges.dtype == torch.long and edges.device == D.device
    e = mst_edges(D, backend="torch")
    assert e.device == D.device and torch.equal(e, edges)
    bc = tn.zero_persistence(D, backend="torch")
    assert bc.deaths.dtype == (np.float32 if dtype == torch.float32 else np.float64)


def test_one_and_two_points():
    bc1 = tn.zero_persistence(np.zeros((1, 1)), backend="torch")
    assert bc1.n_points == 1 and bc1.deaths.shape == (0,) and bc1.edges.shape == (0, 2)
    bc2 = tn.zero_persistence(np.array([[0.0, 0.3], [0.3, 0.0]]), backend="torch")
    np.testing.assert_array_equal(bc2.edges, [[0, 1]])
    np.testing.assert_array_equal(bc2.deaths, [0.3])
    assert rounds_for(1) == 0 and rounds_for(2) == 1 and rounds_for(1025) == 11


@pytest.mark.parametrize(
    ("D", "exc", "match"),
    [
        (torch.tensor([[0.0, -1.0], [-1.0, 0.0]]), ValueError, "negative entry"),
        (torch.tensor([[0.0, float("nan")], [float("nan"), 0.0]]), ValueError, "finite"),
        (torch.tensor([[0.0, 1.0], [2.0, 0.0]]), ValueError, "not symmetric"),
        (torch.tensor([[1.0, 1.0], [1.0, 0.0]]), ValueError, "diagonal"),
        (torch.zeros((2, 3)), ValueError, "square"),
        (torch.zeros((0, 0)), ValueError, "empty"),
        (torch.zeros((2, 2), dtype=torch.complex64), TypeError, "real numbers"),
    ],
)
def test_bad_input_is_named(D, exc, match):
    with pytest.raises(exc, match=match):
        tn.zero_persistence(D, backend="torch")
    if exc is ValueError and D.ndim == 2 and D.shape[0] == D.shape[1] and D.numel():
        with pytest.raises(exc, match=match):
            mst_edges(D, backend="torch")


def test_unknown_engine_is_listed():
    with pytest.raises(ValueError, match=r"'auto', 'cpu', 'torch'"):
        tn.correlation_persistence(np.ones((3, 3)), backend="gpu")


def test_auto_keeps_the_native_backend_for_cpu_input():
    D = symmetric(np.random.default_rng(0).random((20, 20)))
    assert tn.zero_persistence(D).backend == "native"
    assert tn.zero_persistence(torch.from_numpy(D)).backend == "native"
    A = np.random.default_rng(0).standard_normal((10, 20))
    assert tn.correlation_persistence(A).backend == "native"


@pytest.mark.parametrize("kind", ["abs", "sqrt"])
def test_device_tile_arithmetic_on_the_cpu_matches_to_rounding(kind):
    # The GPU's code path (wide tiles, torch map in the dtype) run on CPU tensors: another
    # arithmetic, so deaths to rounding and the tree's weight to rounding (near-ties may swap).
    from topo_neurons.correlation import normalized_activations
    from topo_neurons.persistence._torch_mst import boruvka
    from topo_neurons.persistence._torch_tiles import _panels, tile_row_minima

    rng = np.random.default_rng(13)
    A = rng.standard_normal((48, 1100)).astype(np.float32)
    A[:, 9] = 1.5
    A[:, 600] = A[:, 2]
    ref = tn.correlation_persistence(A, kind, block_size=256)
    Z, _ = normalized_activations(torch.from_numpy(A))
    n = A.shape[1]
    for tile in (512, 768):
        P = _panels(Z, tile)
        a, b, d = boruvka(n, tile_row_minima(P, n, kind, host_kernel=False), P.dtype, P.device)
        assert bool((a < b).all()) and a.shape == (n - 1,)
        np.testing.assert_allclose(d.numpy(), ref.deaths, rtol=0, atol=2e-6)
        D = tn.correlation_dissimilarity(A, kind)
        np.testing.assert_allclose(D[a.numpy(), b.numpy()], d.numpy(), rtol=0, atol=2e-6)
        assert len({*zip(a.tolist(), b.tolist())}) == n - 1
        np.testing.assert_allclose(d.sum().item(), ref.deaths.sum(), rtol=1e-6)


def test_cpu_block_size_keeps_the_dense_panels():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((40, 800))
    ref = tn.correlation_persistence(A, block_size=512)
    bc = tn.correlation_persistence(A, block_size=512, backend="torch")
    np.testing.assert_array_equal(bc.edges, ref.edges)
    np.testing.assert_array_equal(bc.deaths, ref.deaths)


@pytest.mark.parametrize("n", [2, 3, 513, 1024, 1025])
def test_a_chain_of_hooks_as_deep_as_the_graph_is_merged(n):
    # Path weights d(i, i+1) = i + 1, every other pair heavier: in the first round every
    # vertex hooks onto its left neighbour, one chain of depth n − 1 that the pointer jumping
    # must resolve in that round.
    D = np.full((n, n), 10.0 * n)
    i = np.arange(n - 1)
    D[i, i + 1] = D[i + 1, i] = i + 1.0
    np.fill_diagonal(D, 0.0)
    edges, deaths = torch_mst_dense(torch.from_numpy(D))
    np.testing.assert_array_equal(edges.numpy(), np.stack([i, i + 1], axis=1))
    np.testing.assert_array_equal(deaths.numpy(), i + 1.0)
