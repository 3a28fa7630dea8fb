"""Issue 21: the tiled engine's filtered pair task, its in-place panels and its merges.

References: the earlier pair task (the whole cross tile and its transpose, dense pair Prim), the
dense path's map (``_map_into``) and panels (``gemm_panels``), ``np.lexsort``, scipy's
connected components, and the dense path's deaths (bitwise on the same machine).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components
from test_tiled import dense, structured
from test_tiled_review import _kruskal_lexsort

import topo_neurons as tn
from topo_neurons.correlation import GEMM_TILE, _prepare, gemm_panels
from topo_neurons.correlation._gram import _map_into
from topo_neurons.persistence import _panels, _tiled, _tiled_filter, _tiled_kernels


def _blocks(A, ka, kind="abs", constant="uncorrelated"):
    """Panels, constant masks and block trees of the first two blocks (ka, rest) of ``A``."""
    Z, _, const, _ = _prepare(A, constant)
    P = gemm_panels(Z).numpy()
    const = const.numpy().astype(bool)
    code = {"abs": 1, "sqrt": 2}[kind]
    per = ka // GEMM_TILE
    PI, PJ = P[:per], P[per:]
    ci, cj = const[:ka], const[ka:]
    ti = _tiled.diag_task(PI, ci, 0, code)
    tj = _tiled.diag_task(PJ, cj, ka, code)
    return PI, PJ, ci, cj, code, ti, tj


def _dense_pair(PI, PJ, ci, cj, ka, code, ti, tj, monkeypatch):
    """The earlier pair task: the filter is switched off (no candidate allowed)."""
    with monkeypatch.context() as mp:
        mp.setattr(_tiled, "_CANDIDATES_PER_NEURON", 0)
        return _tiled.pair_task(PI, PJ, ci, cj, 0, ka, code, ti, tj)


def _as_set(edges):
    a, b, w = edges
    return sorted(zip(a.tolist(), b.tolist(), w.tolist(), strict=True))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(2, 48),
    blocks=st.sampled_from([(256, 256), (256, 40), (512, 300), (256, 512)]),
    kind=st.sampled_from(["abs", "sqrt"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    ties=st.booleans(),
)
def test_filtered_pair_task_equals_the_dense_pair_prim(seed, m, blocks, kind, dtype, ties):
    ka, kb = blocks
    A = structured(seed, m, ka + kb, dtype, ties)
    PI, PJ, ci, cj, code, ti, tj = _blocks(A, ka, kind)
    tmp = np.empty((GEMM_TILE, GEMM_TILE), PI.dtype)
    got = _tiled_filter.filtered_pair_edges(PI, PJ, ci, cj, 0, ka, code, ti, tj, tmp, 10**7)
    mp = pytest.MonkeyPatch()
    ref = _dense_pair(PI, PJ, ci, cj, ka, code, ti, tj, mp)
    # The same unique tree under (d, i, j): the same cross edges of weight < 1 (those of weight
    # 1 are left to connect_components) with bitwise the same weights.
    light = ref[2] < 1
    assert _as_set(got) == _as_set((ref[0][light], ref[1][light], ref[2][light]))
    key = np.lexsort((got[1], got[0], got[2]))  # returned in Kruskal order
    np.testing.assert_array_equal(key, np.arange(key.size))
    assert (got[0] < ka).all() and (got[1] >= ka).all() and got[2].dtype == PI.dtype


def test_filtered_pair_task_gives_up_beyond_its_cap_and_the_task_falls_back(monkeypatch):
    # All activations equal up to sign and scale: every dissimilarity ties, nothing is filtered.
    rng = np.random.default_rng(3)
    A = np.outer(rng.standard_normal(16), rng.choice([-1.0, 2.0], 600)).astype(np.float32)
    A += 1e-3 * rng.integers(0, 2, A.shape).astype(np.float32)
    PI, PJ, ci, cj, code, ti, tj = _blocks(A, 256)
    tmp = np.empty((GEMM_TILE, GEMM_TILE), np.float32)
    assert _tiled_filter.filtered_pair_edges(PI, PJ, ci, cj, 0, 256, code, ti, tj, tmp, 8) is None
    calls = []
    monkeypatch.setattr(_tiled, "pair_tree", lambda *a: calls.append(1) or _prim(*a))
    monkeypatch.setattr(_tiled, "_CANDIDATES_PER_NEURON", 0)
    bc = tn.correlation_persistence(A, block_size=256)
    assert calls  # the dense pair Prim ran
    np.testing.assert_array_equal(bc.deaths, dense(A).deaths)


_prim = _tiled.pair_tree


def test_float32_map_equals_the_dense_paths_float64_map_bitwise():
    rng = np.random.default_rng(0)
    special = np.array(
        [0.0, -0.0, 1.0, -1.0, 2.0**-25, 2.0**-29, 2.0**-30, 1e-30, 1.0000001, -1.0000001, 0.5],
        np.float32,
    )
    near_one = np.nextafter(np.float32(1.0), np.float32(0.0)) - np.arange(64, dtype=np.float32) * (
        2.0**-24
    )
    tiny = (2.0 ** -rng.uniform(20, 40, 5000)).astype(np.float32)
    x = np.concatenate(
        [special, near_one, tiny, -tiny, rng.uniform(-1.05, 1.05, 200_000).astype(np.float32)]
    )
    for code in (1, 2):
        ref = x.copy()
        _map_into(ref, np.empty_like(ref), code)
        got = x.copy()
        _tiled_filter._map_row(got, code, False, np.zeros(1, bool), False)
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(
    w=st.lists(st.integers(0, 4), min_size=1, max_size=300),
    seed=st.integers(0, 1000),
)
def test_edge_order_is_the_strict_order_of_lexsort(w, seed):
    rng = np.random.default_rng(seed)
    w = np.asarray(w, np.float32) / 4
    a = rng.integers(0, 50, w.size)
    b = a + 1 + rng.integers(0, 50, w.size)
    order = _tiled_kernels.edge_order(a, b, w)
    assert sorted(order.tolist()) == list(range(w.size))
    keys = list(zip(w[order].tolist(), a[order].tolist(), b[order].tolist(), strict=True))
    assert keys == sorted(keys)


def test_kruskal_with_a_reused_union_find_equals_a_fresh_one_and_restores_it():
    rng = np.random.default_rng(5)
    n = 2000
    parent = np.arange(n, dtype=np.int64)
    for _ in range(20):
        e = int(rng.integers(1, 3000))
        a = rng.integers(0, n - 1, e)
        b = a + 1 + rng.integers(0, n - 1 - a)
        w = rng.integers(0, 20, e).astype(np.float32)
        fresh = _tiled_kernels.kruskal_forest(n, a, b, w)
        reused = _tiled_kernels.kruskal_forest(n, a, b, w, parent)
        for x, y in zip(fresh, reused, strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(parent, np.arange(n))


@pytest.mark.parametrize("shape", [(2, 256), (3, 512), (7, 2560), (64, 1024), (5, 300), (9, 1)])
def test_panels_made_in_place_equal_gemm_panels(shape):
    Z = torch.randn(*shape)
    ref = gemm_panels(Z).numpy().copy()
    np.testing.assert_array_equal(_panels.panels_of(Z.clone()), ref)
    Zf = torch.randn(shape[1], shape[0]).T  # not C-contiguous: copied, not reordered
    np.testing.assert_array_equal(_panels.panels_of(Zf), gemm_panels(Zf).numpy())


@pytest.mark.parametrize("as_tensor", [False, True])
def test_the_callers_activations_are_never_reordered(as_tensor):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((32, 1024)).astype(np.float32)
    before = A.copy()
    arg = torch.from_numpy(A) if as_tensor else A
    bc = tn.correlation_persistence(arg, block_size=512)
    np.testing.assert_array_equal(A, before)
    np.testing.assert_array_equal(bc.deaths, dense(before).deaths)


@pytest.mark.slow
def test_the_million_neuron_layout_is_exact_on_a_smaller_n():
    """Blocks of 1024, 256 examples, float32, panels made in place (n a multiple of 256), block 0
    paired with 9 later blocks in three pair tasks (4 + 4 + 1), a partial last block, merges on two
    levels: the layout of ``benchmarks/scale.py --neurons 1048576``, checked against the dense
    path bit for bit and as a spanning tree of the dense matrix."""
    rng = np.random.default_rng(11)
    n, m = 9 * 1024 + 512, 256
    factors = rng.standard_normal((m, 8), dtype=np.float32)
    A = factors @ rng.standard_normal((8, n), dtype=np.float32)
    A += rng.standard_normal((m, n), dtype=np.float32)
    A[:, 4000] = A[:, 17]  # a duplicate in another block (a zero death across blocks)
    A[:, 9000] = 2.0  # a constant neuron
    plan = _tiled._plan(np.zeros((n // GEMM_TILE, 1, GEMM_TILE)), np.zeros(n, bool), 1024, 1)[0]
    assert [k for k, _, _ in plan if k.startswith("pairs-0-")] == [
        "pairs-0-1-5",
        "pairs-0-5-9",
        "pairs-0-9-10",
    ]
    bc = tn.correlation_persistence(A, block_size=1024)
    D = tn.correlation_dissimilarity(A)
    ref = tn.zero_persistence(D)
    np.testing.assert_array_equal(bc.deaths, ref.deaths)
    assert bc.edges.shape == (n - 1, 2) and (bc.edges[:, 0] < bc.edges[:, 1]).all()
    np.testing.assert_array_equal(np.sort(D[bc.edges[:, 0], bc.edges[:, 1]]), bc.deaths)
    g = np.zeros((n, n), bool)
    g[bc.edges[:, 0], bc.edges[:, 1]] = True
    assert connected_components(g, directed=False)[0] == 1
    assert bc.deaths[0] == 0.0  # the duplicate


@pytest.mark.parametrize("first_constant", [False, True])
def test_dead_neurons_leave_the_filter_and_the_tree_is_the_strict_order_tree(
    monkeypatch, first_constant
):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((24, 1024)).astype(np.float32)
    A[:, rng.choice(1024, 120, replace=False)] = 0.5  # 12 % dead neurons: all ties at 1
    A[:, 900] = A[:, 3]
    A[:, 0] = 2.0 if first_constant else A[:, 0]
    calls = []
    monkeypatch.setattr(_tiled, "pair_tree", lambda *a: calls.append(1) or _prim(*a))
    bc = tn.correlation_persistence(A, block_size=512)
    assert not calls  # no fallback: the constant rows and columns never pass the filter
    D = tn.correlation_dissimilarity(A)
    np.testing.assert_array_equal(bc.deaths, dense(A).deaths)
    assert sorted(map(tuple, bc.edges.tolist())) == _kruskal_lexsort(D)


def test_connect_components_adds_the_strict_order_edges_of_weight_one():
    # Components {0, 4}, {1, 2}, {3}, {5, 6}: weight-1 edges (0, 1), (0, 3), (0, 5).
    a, b = np.array([1, 0, 5]), np.array([2, 4, 6])
    w = np.array([0.1, 0.2, 0.3], np.float32)
    ga, gb, gw = _tiled_kernels.connect_components(7, a, b, w)
    assert list(zip(ga.tolist(), gb.tolist(), gw.tolist(), strict=True)) == [
        (1, 2, np.float32(0.1)),
        (0, 4, np.float32(0.2)),
        (5, 6, np.float32(0.3)),
        (0, 1, 1.0),
        (0, 3, 1.0),
        (0, 5, 1.0),
    ]
    # Weight-1 edges in the input are dropped and rebuilt the same way.
    ga2, gb2, _ = _tiled_kernels.connect_components(
        7, np.append(a, 3), np.append(b, 6), np.append(w, np.float32(1.0))
    )
    np.testing.assert_array_equal(ga2, ga)
    np.testing.assert_array_equal(gb2, gb)
