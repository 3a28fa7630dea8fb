"""The tiled engine: exact barcodes from activations without the n × n matrix.

References: the dense path ``zero_persistence(correlation_dissimilarity(A))`` (bitwise deaths),
scipy's MST on the ranks of the dense matrix (independent of the package's persistence code),
and the dense path's own error messages for bad inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

import topo_neurons as tn
from topo_neurons.correlation import GEMM_TILE
from topo_neurons.persistence import _schedule, _tiled


def scipy_deaths(D: np.ndarray) -> np.ndarray:
    """MST weights by scipy on the ranks of the distances (no zero edges, exact order)."""
    D = np.asarray(D, dtype=np.float64)
    n = D.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    _, ranks = np.unique(D[iu, ju], return_inverse=True)
    R = np.zeros((n, n))
    R[iu, ju] = ranks + 1.0
    tree = minimum_spanning_tree(R + R.T).tocoo()
    assert tree.nnz == n - 1
    return np.sort(D[tree.row, tree.col])


def structured(seed: int, m: int, n: int, dtype, ties: bool) -> np.ndarray:
    """Random activations with duplicated, scaled, negated and constant neurons."""
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values: many equal correlations
        A = rng.integers(0, 3, size=(m, n)).astype(dtype)
    else:
        A = rng.standard_normal((m, n)).astype(dtype)
    k = max(1, n // 10)
    src = rng.integers(0, n, size=k)
    dst = rng.integers(0, n, size=k)
    A[:, dst] = A[:, src] * rng.choice([-2.0, 1.0, 3.0], size=k).astype(dtype)
    const = rng.integers(0, n, size=max(1, n // 50))
    A[:, const] = rng.standard_normal(const.size).astype(dtype)
    return A


def dense(A, kind="abs", constant="uncorrelated"):
    return tn.zero_persistence(tn.correlation_dissimilarity(A, kind, constant))


def assert_spanning_tree(bc, D):
    n = bc.n_points
    assert bc.edges.shape == (n - 1, 2)
    assert (bc.edges[:, 0] < bc.edges[:, 1]).all()
    np.testing.assert_array_equal(D[bc.edges[:, 0], bc.edges[:, 1]], bc.deaths)
    g = np.zeros((n, n), bool)
    g[bc.edges[:, 0], bc.edges[:, 1]] = True
    assert connected_components(g, directed=False)[0] == 1


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(2, 40),
    n=st.integers(2, 1400),
    blocks=st.sampled_from([1, 2, 3]),
    kind=st.sampled_from(["abs", "sqrt"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    ties=st.booleans(),
)
def test_tiled_equals_dense_and_scipy(seed, m, n, blocks, kind, dtype, ties):
    A = structured(seed, m, n, dtype, ties)
    D = tn.correlation_dissimilarity(A, kind)
    ref = tn.zero_persistence(D)
    bc = tn.correlation_persistence(A, kind, block_size=GEMM_TILE * blocks, scheduler="sync")
    assert bc.backend == "tiled" and bc.n_points == n
    assert bc.deaths.dtype == ref.deaths.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(bc.deaths, ref.deaths)  # bitwise, ties included
    np.testing.assert_array_equal(bc.deaths, scipy_deaths(D))
    assert_spanning_tree(bc, D)


@pytest.mark.parametrize("n", [1030, 1100, 768])
@pytest.mark.parametrize("block_size", [256, 512, 768])
def test_block_sizes_that_do_not_divide_n(rng, n, block_size):
    # 1030 = 4·256 + 6: a last block of 6 neurons (fewer than the GEMM's 16 rows).
    A = structured(int(rng.integers(2**31)), 48, n, np.float32, ties=False)
    bc = tn.correlation_persistence(A, block_size=block_size)
    ref = dense(A)
    np.testing.assert_array_equal(bc.deaths, ref.deaths)
    # No ties among these deaths: the MST is unique, so the edges are the dense path's too.
    if np.unique(ref.deaths).size == ref.deaths.size:
        np.testing.assert_array_equal(bc.edges, ref.edges)


def test_duplicated_neurons_give_zero_bars_like_the_dense_path(rng):
    base = rng.standard_normal((30, 300))
    A = np.concatenate([base, base, -base[:, :100]], axis=1)  # 700 neurons, 400 duplicates
    for kind in ("abs", "sqrt"):
        bc = tn.correlation_persistence(A, kind, block_size=256)
        ref = dense(A, kind)
        np.testing.assert_array_equal(bc.deaths, ref.deaths)
        # ρ = ±1 up to rounding: d ≈ 1e-16 for "abs", sqrt(2·1e-16) ≈ 1.5e-8 for "sqrt".
        assert (bc.deaths[:400] <= (1e-12 if kind == "abs" else 1e-7)).all()


@pytest.mark.parametrize("constant", ["uncorrelated", "drop"])
def test_constant_neuron_policies(rng, constant):
    A = rng.standard_normal((20, 600)).astype(np.float32)
    A[:, [3, 290, 599]] = 1.5
    bc = tn.correlation_persistence(A, constant=constant, block_size=256)
    ref = dense(A, constant=constant)
    assert bc.n_points == ref.n_points == (600 if constant == "uncorrelated" else 597)
    np.testing.assert_array_equal(bc.deaths, ref.deaths)
    if constant == "uncorrelated":
        assert (bc.deaths[-3:] == 1.0).all()


def test_constant_raise_names_the_neurons(rng):
    A = rng.standard_normal((20, 600))
    A[:, 290] = 0.0
    with pytest.raises(ValueError, match="neuron\\(s\\) 290"):
        tn.correlation_persistence(A, constant="raise", block_size=256)


BAD = {
    "nan": lambda: (
        np.where(np.arange(40 * 600).reshape(40, 600) == 3 * 600 + 7, np.nan, 1.0)
        + np.random.default_rng(0).standard_normal((40, 600))
    ),
    "one neuron": lambda: np.ones((10, 1)),
    "one example": lambda: np.ones((1, 600)),
    "3-D": lambda: np.ones((4, 5, 600)),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("block_size", [None, 256])
def test_bad_inputs_raise_the_dense_paths_errors(case, block_size):
    A = BAD[case]()
    with pytest.raises(ValueError) as dense_err:
        tn.correlation_dissimilarity(A)
    with pytest.raises(ValueError) as tiled_err:
        tn.correlation_persistence(A, block_size=block_size)
    assert str(tiled_err.value) == str(dense_err.value)
    if case == "nan":
        assert "example 3, neuron 7" in str(tiled_err.value)


def test_bad_options_list_the_valid_ones(rng):
    A = rng.standard_normal((10, 300))
    with pytest.raises(ValueError, match="multiple of 256"):
        tn.correlation_persistence(A, block_size=100)
    with pytest.raises(ValueError, match="multiple of 256"):
        tn.correlation_persistence(A, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        tn.correlation_persistence(A, block_size=256.0)
    with pytest.raises(ValueError, match="scheduler='processes' is not valid"):
        tn.correlation_persistence(A, block_size=256, scheduler="processes")
    with pytest.raises(ValueError, match="valid kinds"):
        tn.correlation_persistence(A, kind="cos")
    with pytest.raises(ValueError, match="valid policies"):
        tn.correlation_persistence(A, constant="zero")
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        tn.correlation_persistence([[1.0, 2.0], [3.0, 4.0]])


def test_torch_input_with_grad_gives_the_numpy_result(rng):
    A = rng.standard_normal((32, 700)).astype(np.float32)
    t = torch.tensor(A, requires_grad=True)
    bc = tn.correlation_persistence(t, block_size=512)
    np.testing.assert_array_equal(bc.deaths, dense(A).deaths)
    assert t.grad is None


def test_auto_block_size_uses_the_dense_path_for_small_n(rng):
    A = rng.standard_normal((16, 200))
    bc = tn.correlation_persistence(A)
    assert bc.backend == "native"
    np.testing.assert_array_equal(bc.deaths, dense(A).deaths)


@pytest.mark.parametrize("scheduler", ["sync", "threads", "pool"])
def test_schedulers_agree_and_report_progress(rng, scheduler):
    A = structured(7, 24, 1100, np.float32, ties=True)
    calls = []
    if scheduler == "pool":  # the thread pool used when Dask is not installed
        Zt, _, const, _ = tn.correlation._prepare(A, "uncorrelated")
        P = tn.correlation.gemm_panels(Zt).numpy()
        plan, final, n_tiles = _tiled._plan(P, const.numpy(), 256, 1)
        prog = _schedule._Progress(lambda d, t: calls.append((d, t)), n_tiles)
        deaths = _schedule._run_pool(plan, final, prog, workers=2)[2]
    else:
        bc = tn.correlation_persistence(
            A, block_size=256, scheduler=scheduler, progress=lambda d, t: calls.append((d, t))
        )
        deaths = bc.deaths
    np.testing.assert_array_equal(deaths, dense(A).deaths)
    total = _tiled.tile_task_count(1100, 256)
    assert total == 5 + 10
    # One call per finished tile task; a pair task of block i counts the pairs it computed.
    done = sorted(d for d, _ in calls)
    assert all(t == total for _, t in calls) and done[-1] == total
    assert len(set(done)) == len(done) and done[0] >= 1


@pytest.mark.slow
def test_dask_local_cluster_matches_the_dense_path(rng):
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    A = structured(11, 32, 1300, np.float32, ties=False)
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        scattered, submitted = [], []
        scatter, submit = client.scatter, client.submit
        client.scatter = lambda data, **kw: scattered.append(data) or scatter(data, **kw)
        client.submit = lambda f, *args, **kw: submitted.append(args) or submit(f, *args, **kw)
        bc = tn.correlation_persistence(A, "sqrt", block_size=256, scheduler=client)
        assert len(client.scheduler_info()["workers"]) == 2
    # The blocks of Z went to the cluster once, by scatter; tasks carry futures, not arrays.
    n_blocks = -(-1300 // 256)
    assert len(scattered) == 1 and len(scattered[0]) == 2 * n_blocks  # panels + constant masks
    assert sum(isinstance(x, np.ndarray) for x in scattered[0]) == 2 * n_blocks
    assert not any(isinstance(x, np.ndarray) for args in submitted for x in args)
    # 6 block trees, 6 pair tasks (block i with ≤ 4 later blocks each: 2 for block 0),
    # merges 12 → 2 → 1; each runs through the one-thread wrapper
    assert _tiled.tile_task_count(1300, 256) == 6 + 15
    assert len(submitted) == 6 + 6 + 3
    assert {args[0] for args in submitted} == {
        _tiled.diag_task,
        _tiled.pairs_task,
        _tiled.merge_task,
    }
    np.testing.assert_array_equal(bc.deaths, dense(A, "sqrt").deaths)
    assert bc.backend == "tiled"


def test_auto_block_size_takes_the_tiled_engine_above_the_dense_limit(rng, monkeypatch):
    monkeypatch.setattr(_tiled, "DENSE_MAX_NEURONS", 300)
    monkeypatch.setattr(_tiled, "DEFAULT_BLOCK", 256)
    A = rng.standard_normal((16, 700)).astype(np.float32)
    bc = tn.correlation_persistence(A)
    assert bc.backend == "tiled"
    np.testing.assert_array_equal(bc.deaths, dense(A).deaths)


def test_progress_bar_counts_the_tiles(rng, capsys):
    A = rng.standard_normal((16, 600)).astype(np.float32)
    tn.correlation_persistence(A, block_size=256, scheduler="sync", progress=True)
    err = capsys.readouterr().err
    total = _tiled.tile_task_count(600, 256)
    assert "tiles:" in err and f"0/{total} [" in err  # tqdm bar over the tile tasks


def test_extreme_columns_give_the_barcode_of_the_unscaled_activations():
    """Columns scaled by 2**124 and 2**-100 (their float32 sums would overflow / underflow)
    give the tiled engine the dense barcode of the unscaled activations, bit for bit."""
    torch.manual_seed(0)
    A = torch.randn(64, 700)
    B = A.clone()
    B[:, 5] *= 2.0**124
    B[:, 600] *= 2.0**-100
    tiled = tn.correlation_persistence(B, block_size=256)
    dense = tn.zero_persistence(tn.correlation_dissimilarity(A))
    assert np.array_equal(tiled.deaths, dense.deaths)
    assert np.array_equal(tiled.edges, dense.edges)
