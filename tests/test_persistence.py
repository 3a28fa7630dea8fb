"""0-dim persistence: every backend against scipy's MST, GUDHI and single linkage.

References used here are independent of the package: ``scipy.sparse.csgraph.
minimum_spanning_tree`` (deaths), GUDHI's own ``SimplexTree.persistence()`` (``to_gudhi``),
``scipy.cluster.hierarchy`` single linkage (``clusters``) and finite differences (gradients).

scipy's dense MST treats entries within 1e-8 of zero as missing edges (it masks them with
``numpy.ma.masked_values``) and its sparse MST drops explicit zeros, so the reference runs on
the *ranks* of the distances (1, 2, … with ties kept): the same order, no zeros, exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial.distance import squareform

import topo_neurons as tn
from topo_neurons.persistence import Barcode, mst_edges
from topo_neurons.persistence._barcode import BARCODE_FIELDS

# The ``backend`` fixture only names a backend; it holds no state between examples.
backend_settings = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

#: giotto-ph computes in float32: on float64 input its deaths agree to this tolerance.
GIOTTO_F64_ATOL = 1e-6


# --------------------------------------------------------------------------- references
def scipy_deaths(D: np.ndarray) -> np.ndarray:
    """MST weights of ``D`` by scipy, computed on the ranks of the distances (exact)."""
    D = np.asarray(D, dtype=np.float64)
    n = D.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    _, ranks = np.unique(D[iu, ju], return_inverse=True)
    R = np.zeros((n, n))
    R[iu, ju] = ranks + 1.0
    R = R + R.T
    tree = minimum_spanning_tree(R).tocoo()
    assert tree.nnz == n - 1, "the rank matrix has no zero edge: scipy must return a tree"
    return np.sort(D[tree.row, tree.col])


def assert_deaths_equal(actual: np.ndarray, expected: np.ndarray, backend: str, dtype) -> None:
    """Exact for native and GUDHI; giotto-ph exact on float32, to float32 precision on float64."""
    assert actual.shape == expected.shape
    if backend == "giotto" and np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=0, atol=GIOTTO_F64_ATOL)
    else:
        np.testing.assert_array_equal(actual, expected)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labellings describe the same partition (labels may differ)."""
    pairs = set(zip(np.asarray(a).tolist(), np.asarray(b).tolist()))
    return len(pairs) == len(set(np.asarray(a).tolist())) == len(set(np.asarray(b).tolist()))


def activations(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    factors = rng.standard_normal((m, 3))
    return factors @ rng.standard_normal((3, n)) + 0.7 * rng.standard_normal((m, n))


# --------------------------------------------------------------------------- strategies
@st.composite
def distance_matrices(draw, min_n: int = 2, max_n: int = 30):
    """Correlation dissimilarities of random activations, with and without ties.

    ``ties``: ``"none"``; ``"quantised"`` (rounded to a grid, so many equal values and some
    exact zeros); ``"duplicates"`` (some neurons are exact copies of others: their rows are
    equal and their distance is exactly 0); ``"uniform"`` (a random symmetric matrix with
    values up to 10, not a correlation space).
    """
    n = draw(st.integers(min_n, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(("abs", "sqrt")))
    dtype = draw(st.sampled_from((np.float64, np.float32)))
    ties = draw(st.sampled_from(("none", "quantised", "duplicates", "uniform")))
    rng = np.random.default_rng(seed)
    if ties == "uniform":
        U = np.triu(rng.uniform(0.0, 10.0, (n, n)), k=1)
        D = U + U.T
    else:
        D = tn.correlation_dissimilarity(activations(rng, 24, n), kind=kind)
    if ties == "quantised":
        q = draw(st.sampled_from((3, 10, 40)))
        D = np.round(D * q) / q
    elif ties == "duplicates":
        k = draw(st.integers(1, max(1, n // 2)))
        for j in rng.choice(n, size=k, replace=False):
            i = int(rng.integers(n))
            if i == j:
                continue
            D[j, :] = D[i, :]
            D[:, j] = D[:, i]
            D[i, j] = D[j, i] = 0.0
            D[j, j] = 0.0
    D = np.ascontiguousarray(D.astype(dtype))
    assert np.array_equal(D, D.T) and not np.diagonal(D).any()
    return D


# --------------------------------------------------------------------------- properties
@backend_settings
@given(D=distance_matrices())
def test_property_deaths_equal_scipy_mst(backend, D):
    bc = tn.zero_persistence(D, backend=backend)
    n = D.shape[0]
    assert bc.n_points == n and len(bc) == n - 1 and bc.backend == backend
    assert bc.deaths.dtype == D.dtype
    assert_deaths_equal(bc.deaths, scipy_deaths(D), backend, D.dtype)


@backend_settings
@given(D=distance_matrices())
def test_property_edges_form_a_spanning_tree_with_the_deaths(backend, D):
    bc = tn.zero_persistence(D, backend=backend)
    n = D.shape[0]
    edges = bc.edges
    assert edges.shape == (n - 1, 2) and edges.dtype == np.int64
    assert np.all(edges[:, 0] < edges[:, 1])
    assert edges.min() >= 0 and edges.max() < n
    assert len({tuple(e) for e in edges.tolist()}) == n - 1  # no repeated edge
    adjacency = np.zeros((n, n), dtype=np.int8)
    adjacency[edges[:, 0], edges[:, 1]] = 1
    n_components, _ = connected_components(adjacency, directed=False)
    assert n_components == 1  # n − 1 distinct edges, connected: a spanning tree
    assert np.array_equal(D[edges[:, 0], edges[:, 1]], bc.deaths)  # bitwise, no tolerance
    assert np.all(np.diff(bc.deaths) >= 0)


@backend_settings
@given(D=distance_matrices(), seed=st.integers(0, 2**32 - 1))
def test_property_deaths_invariant_under_permuting_points(backend, D, seed):
    perm = np.random.default_rng(seed).permutation(D.shape[0])
    a = tn.zero_persistence(D, backend=backend).deaths
    b = tn.zero_persistence(D[np.ix_(perm, perm)], backend=backend).deaths
    assert_deaths_equal(b, a, backend, D.dtype)


@given(D=distance_matrices(min_n=3, max_n=25))
def test_property_backends_agree_with_each_other(D):
    native = tn.zero_persistence(D, backend="native")
    gudhi = tn.zero_persistence(D, backend="gudhi")
    giotto = tn.zero_persistence(D, backend="giotto")
    np.testing.assert_array_equal(native.deaths, gudhi.deaths)
    assert_deaths_equal(giotto.deaths, native.deaths, "giotto", D.dtype)
    # Without ties the MST is unique: all three return the same edges.
    if len(np.unique(D[np.triu_indices(D.shape[0], 1)])) == D.shape[0] * (D.shape[0] - 1) // 2:
        assert {tuple(e) for e in native.edges.tolist()} == {tuple(e) for e in gudhi.edges.tolist()}


# --------------------------------------------------------------------------- GUDHI format
@backend_settings
@given(D=distance_matrices(max_n=20))
def test_property_to_gudhi_equals_gudhi_persistence(backend, D):
    import gudhi

    rips = gudhi.RipsComplex(distance_matrix=D.astype(np.float64))
    stree = rips.create_simplex_tree(max_dimension=1)
    expected = stree.persistence(min_persistence=-1)  # keeps zero-length bars
    ours = tn.zero_persistence(D, backend=backend).to_gudhi()
    assert ours[0] == (0, (0.0, float("inf")))
    finite = [d for _, (_, d) in ours[1:]]
    assert finite == sorted(finite, reverse=True)  # like GUDHI: by decreasing death
    ours_sorted = sorted(ours, key=lambda p: p[1][1])
    exp_sorted = sorted(expected, key=lambda p: p[1][1])
    assert [p[0] for p in ours_sorted] == [p[0] for p in exp_sorted]
    got = np.array([p[1] for p in ours_sorted])
    want = np.array([p[1] for p in exp_sorted])
    assert np.array_equal(got[:, 0], want[:, 0])
    if backend == "giotto" and D.dtype == np.float64:
        np.testing.assert_allclose(got[:-1, 1], want[:-1, 1], rtol=0, atol=GIOTTO_F64_ATOL)
        assert got[-1, 1] == want[-1, 1] == np.inf
    else:
        assert np.array_equal(got[:, 1], want[:, 1])
    # from_gudhi reads the barcode back, with its pairs, from GUDHI's tree.
    back = Barcode.from_gudhi(stree)
    assert isinstance(back, Barcode)
    np.testing.assert_array_equal(back.deaths, np.sort(want[:-1, 1]))
    assert back.n_points == D.shape[0] and back.backend == "gudhi"
    D64 = D.astype(np.float64)
    np.testing.assert_array_equal(D64[back.edges[:, 0], back.edges[:, 1]], back.deaths)
    assert back == tn.zero_persistence(D64, backend="gudhi")  # the same pairs, in the same order
    assert back.to_gudhi() == sorted(expected, key=lambda p: -p[1][1])
    # The deprecated list form still reads the deaths back (one release).
    with pytest.warns(DeprecationWarning, match=r"pass the gudhi\.SimplexTree"):
        np.testing.assert_array_equal(
            Barcode.from_gudhi(expected, n_points=D.shape[0]), np.sort(want[:-1, 1])
        )


def _gudhi_tree(n: int, edges: dict[tuple[int, int], float]):
    import gudhi

    tree = gudhi.SimplexTree()
    for v in range(n):
        tree.insert([v], 0.0)
    for e, f in edges.items():
        tree.insert(list(e), f)
    return tree


def test_from_gudhi_counts_bars():
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(ValueError, match="expected 2 finite 0-dim bars, found 1"),
    ):
        Barcode.from_gudhi([(0, (0.0, np.inf)), (0, (0.0, 0.4))], n_points=3)
    tree = _gudhi_tree(3, {(0, 1): 0.0, (1, 2): 0.4})
    tree.compute_persistence()  # the default min_persistence=0 drops the zero-length bar
    with pytest.raises(ValueError, match="expected 2 finite 0-dim bars, found 1"):
        Barcode.from_gudhi(tree)
    tree.compute_persistence(min_persistence=-1)
    bc = Barcode.from_gudhi(tree)
    assert bc == Barcode(np.array([0.0, 0.4]), np.array([[0, 1], [1, 2]]), 3, backend="gudhi")


def test_from_gudhi_errors():
    with pytest.raises(TypeError, match=r"takes a gudhi\.SimplexTree"):
        Barcode.from_gudhi(np.array([[0.0, 0.4]]))
    tree = _gudhi_tree(2, {(0, 1): 0.3})
    with pytest.raises(ValueError, match=r"call simplex_tree\.compute_persistence"):
        Barcode.from_gudhi(tree)
    tree.compute_persistence(min_persistence=-1)
    assert Barcode.from_gudhi(tree).deaths.tolist() == [0.3]
    late = _gudhi_tree(2, {(0, 1): 0.3})
    late.assign_filtration([1], 0.1)
    late.compute_persistence(min_persistence=-1)
    with pytest.raises(ValueError, match=r"vertex 1 is born at 0\.1"):
        Barcode.from_gudhi(late)
    apart = _gudhi_tree(3, {(0, 1): 0.3})  # two components: two infinite bars
    apart.compute_persistence(min_persistence=-1)
    with pytest.raises(ValueError, match="expected 2 finite 0-dim bars, found 1"):
        Barcode.from_gudhi(apart)


# --------------------------------------------------------------------------- clusters
@backend_settings
@given(D=distance_matrices(min_n=2, max_n=25))
def test_property_clusters_equal_single_linkage(backend, D):
    bc = tn.zero_persistence(D, backend=backend)
    Z = linkage(squareform(D.astype(np.float64), checks=False), method="single")
    deaths = np.unique(bc.deaths)
    mids = (deaths[:-1] + deaths[1:]) / 2
    # Exactly at each death (``≤`` merges), between deaths, below and above all of them.
    thresholds = np.concatenate([[-1.0, deaths[-1] + 1.0], deaths, mids])
    if backend == "giotto" and D.dtype == np.float64:
        # giotto-ph's tree is an MST of the float32-rounded matrix: its clusters are exact at
        # scales that no entry of D is within float32 rounding of.
        values = np.unique(D[np.triu_indices(D.shape[0], 1)])
        far = np.min(np.abs(thresholds[:, None] - values[None, :]), axis=1) > 1e-5
        thresholds = thresholds[far]
        assert thresholds.size >= 2
    assert thresholds.size >= 2
    for t in thresholds:
        labels = bc.clusters(float(t))
        expected = fcluster(Z, t, criterion="distance")
        assert labels.shape == (D.shape[0],)
        assert same_partition(labels, expected), t
        assert bc.n_clusters(float(t)) == len(np.unique(expected))
    assert bc.n_clusters(float(deaths[-1] + 1.0)) == 1


def test_clusters_labels_in_order_of_smallest_point():
    D = np.array([[0, 5, 1, 5], [5, 0, 5, 2], [1, 5, 0, 5], [5, 2, 5, 0]], dtype=np.float64)
    bc = tn.zero_persistence(D)
    assert bc.clusters(1.5).tolist() == [0, 1, 0, 2]
    assert bc.clusters(2.0).tolist() == [0, 1, 0, 1]
    assert bc.clusters(0.0).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("threshold", "error", "match"),
    [
        (np.inf, ValueError, "threshold must be finite; got inf"),
        (np.nan, ValueError, "threshold must be finite; got nan"),
        ("0.5", TypeError, "threshold must be a real number; got str"),
    ],
)
def test_clusters_bad_threshold(threshold, error, match):
    bc = tn.zero_persistence(np.array([[0.0, 0.3], [0.3, 0.0]]))
    with pytest.raises(error, match=match):
        bc.clusters(threshold)
    with pytest.raises(error, match=match):
        bc.n_clusters(threshold)


# --------------------------------------------------------------------------- files
def test_save_load_round_trip(backend, tmp_path, rng):
    D = tn.correlation_dissimilarity(activations(rng, 30, 25).astype(np.float32))
    bc = tn.zero_persistence(D, backend=backend)
    path = bc.save(tmp_path / "sub" / "bars.npz")
    assert path == tmp_path / "sub" / "bars.npz"
    back = Barcode.load(path)
    assert back == bc
    assert back.backend == backend
    assert back.deaths.dtype == np.float32 and back.edges.dtype == np.int64
    assert np.array_equal(back.deaths, bc.deaths) and np.array_equal(back.edges, bc.edges)
    assert [p.name for p in path.parent.iterdir()] == ["bars.npz"]  # no temporary left


def test_failing_write_leaves_the_old_file(tmp_path, monkeypatch, rng):
    D = tn.correlation_dissimilarity(activations(rng, 20, 10))
    old = tn.zero_persistence(D)
    path = old.save(tmp_path / "bars.npz")
    before = path.read_bytes()
    new = tn.zero_persistence(tn.correlation_dissimilarity(activations(rng, 20, 12)))

    def failing_savez(file, **arrays):
        with open(file, "wb") as fh:
            fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert Barcode.load(path) == old
    assert [p.name for p in tmp_path.iterdir()] == ["bars.npz"]


def test_save_and_load_errors(tmp_path):
    bc = tn.zero_persistence(np.array([[0.0, 0.3], [0.3, 0.0]]))
    with pytest.raises(ValueError, match=r"barcode files end in \.npz; got '.*bars\.txt'"):
        bc.save(tmp_path / "bars.txt")
    with pytest.raises(FileNotFoundError, match="no barcode file at"):
        Barcode.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", deaths=np.zeros(1))
    with pytest.raises(ValueError, match=r"not a barcode file: missing \['edges', 'n_points'\]"):
        Barcode.load(tmp_path / "other.npz")


def _assert_same_fields(back: Barcode, bc: Barcode, *, dtype=None) -> None:
    """Every field of the dataclass equal (``==`` compares no ``backend``), and the dtypes."""
    names = [f.name for f in dataclasses.fields(Barcode)]
    assert names == list(BARCODE_FIELDS) == ["deaths", "edges", "n_points", "backend"]
    for name in names:
        assert np.array_equal(getattr(back, name), getattr(bc, name)), name
    assert back.deaths.dtype == (dtype or bc.deaths.dtype) and back.edges.dtype == np.int64


def _barcodes_of_every_backend(rng) -> list[Barcode]:
    D = tn.correlation_dissimilarity(activations(rng, 30, 12))
    out = [tn.zero_persistence(D, backend=b) for b in ("native", "giotto", "gudhi")]
    out.append(tn.zero_persistence(D.astype(np.float32), backend="gudhi"))
    out.append(Barcode(np.zeros(0), np.zeros((0, 2), np.int64), 1, backend="giotto"))
    return out


def _write_and_read(kind: str, barcodes: list[Barcode], tmp_path, *, old: bool = False):
    """Write ``barcodes`` in one of the three file kinds and read them back.

    ``old``: as files written before ``backend`` was stored (the key left out).
    """
    import json

    from topo_neurons.analysis import LayerRedundancy
    from topo_neurons.tracking import BarcodeHistory

    if kind == "npz":
        back = []
        for k, bc in enumerate(barcodes):
            path = bc.save(tmp_path / f"bars{k}.npz")
            if old:
                arrays = {n: a for n, a in bc.to_arrays().items() if n != "backend"}
                np.savez(path, **arrays)
            back.append(Barcode.load(path))
        return back
    if kind == "report-json":
        back = []
        for bc in barcodes:
            n = bc.n_points
            entry = LayerRedundancy(
                name="fc", n_neurons=n, total_neurons=n, labels=tuple(f"fc[{i}]" for i in range(n)),
                point_layers=("fc",) * n, constant_neurons=(), barcode=bc, summary={},
                redundant_pairs=(), n_clusters={}, effective_neurons={}, cross_layer_edges=0,
            )  # fmt: skip
            d = json.loads(json.dumps(entry.to_dict(), allow_nan=False))
            if old:
                del d["barcode"]["backend"]
            back.append(LayerRedundancy.from_dict(d).barcode)
        return back
    assert kind == "history"
    h = BarcodeHistory()
    for k, bc in enumerate(barcodes):
        h.append(k, {"fc": bc, "network": barcodes[0]})
    path = h.save(tmp_path / "history.npz")
    if old:
        with np.load(path) as f:
            arrays = {n: f[n] for n in f.files if not n.startswith("backend_")}
        assert len(arrays) == 3 + 3 * 2 * len(barcodes)
        np.savez(path, **arrays)
    back = BarcodeHistory.load(path)
    assert back.steps == h.steps and back.layers == ("fc", "network")
    assert all(b == barcodes[0] for b in back.barcodes["network"])
    return back.barcodes["fc"]


@pytest.mark.parametrize("kind", ["npz", "report-json", "history"])
def test_every_barcode_file_round_trips_every_field(kind, tmp_path, rng):
    barcodes = _barcodes_of_every_backend(rng)
    back = _write_and_read(kind, barcodes, tmp_path)
    assert len(back) == len(barcodes) == 5
    assert {bc.backend for bc in back} == {"native", "giotto", "gudhi"}
    for b, bc in zip(back, barcodes):
        # JSON writes the deaths as decimal floats (exactly); they read back as float64.
        _assert_same_fields(b, bc, dtype=np.float64 if kind == "report-json" else None)


@pytest.mark.parametrize("kind", ["npz", "report-json", "history"])
def test_barcode_files_without_backend_still_load(kind, tmp_path, rng):
    barcodes = _barcodes_of_every_backend(rng)
    back = _write_and_read(kind, barcodes, tmp_path, old=True)
    assert len(back) == len(barcodes) == 5
    for b, bc in zip(back, barcodes):
        assert b == bc and b.backend == "native"


def test_barcode_dict_round_trip(rng):
    barcodes = _barcodes_of_every_backend(rng)
    assert len(barcodes) == 5
    for bc in barcodes:
        d = bc.to_dict()
        assert list(d) == list(BARCODE_FIELDS)
        assert isinstance(d["n_points"], int) and isinstance(d["backend"], str)
        _assert_same_fields(Barcode.from_dict(d), bc, dtype=np.float64)
        _assert_same_fields(Barcode.from_dict(bc.to_arrays()), bc)
    with pytest.raises(ValueError, match=r"not a barcode: missing \['edges'\]"):
        Barcode.from_dict({"deaths": [0.5], "n_points": 2})


# --------------------------------------------------------------------------- gradients
def test_differentiable_deaths_gradient_reaches_exactly_the_mst_entries(backend, rng):
    n = 15
    D_np = tn.correlation_dissimilarity(activations(rng, 30, n))
    D = torch.tensor(D_np, requires_grad=True)
    deaths = tn.differentiable_deaths(D, backend=backend)
    bc = tn.zero_persistence(D_np, backend=backend)
    assert deaths.dtype == torch.float64 and deaths.shape == (n - 1,)
    np.testing.assert_array_equal(deaths.detach().numpy(), bc.deaths)
    weights = torch.arange(1.0, n, dtype=torch.float64)
    (weights * deaths).sum().backward()
    expected = np.zeros((n, n))
    expected[bc.edges[:, 0], bc.edges[:, 1]] = weights.numpy()
    np.testing.assert_array_equal(D.grad.numpy(), expected)


def test_differentiable_deaths_through_correlation_gradcheck():
    torch.manual_seed(3)
    A = torch.randn(12, 6, dtype=torch.float64, requires_grad=True)

    def f(x):
        return tn.differentiable_deaths(tn.correlation_dissimilarity(x, kind="sqrt"))

    assert torch.autograd.gradcheck(f, (A,), eps=1e-6, atol=1e-7)


def test_differentiable_deaths_keeps_dtype_and_rejects_numpy():
    D = torch.tensor([[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]], dtype=torch.float32)
    out = tn.differentiable_deaths(D)
    assert out.dtype == torch.float32 and out.device == D.device
    assert out.tolist() == pytest.approx([0.2, 0.5])
    edges = mst_edges(D)
    assert edges.dtype == torch.long and edges.tolist() == [[0, 1], [1, 2]]
    with pytest.raises(TypeError, match=r"needs a torch\.Tensor; got ndarray"):
        tn.differentiable_deaths(D.numpy())


def test_zero_persistence_accepts_tensors_with_grad():
    D = torch.tensor([[0.0, 0.2], [0.2, 0.0]], dtype=torch.float64, requires_grad=True)
    bc = tn.zero_persistence(D)
    assert bc.deaths.tolist() == [0.2] and bc.deaths.dtype == np.float64


# --------------------------------------------------------------------------- bad input
BAD_MATRICES = [
    (np.zeros((3, 4)), ValueError, r"must be square \(n, n\); got shape \(3, 4\)"),
    (np.zeros(4), ValueError, r"must be square \(n, n\); got shape \(4,\)"),
    (np.zeros((2, 2, 2)), ValueError, r"must be square \(n, n\); got shape \(2, 2, 2\)"),
    (np.zeros((0, 0)), ValueError, r"is empty \(shape \(0, 0\)\)"),
    (
        np.array([[0, np.nan, 1], [np.nan, 0, 1], [1, 1, 0]]),
        ValueError,
        r"contains nan at \[0, 1\]; all entries must be finite",
    ),
    (
        np.array([[0, 1, 1], [1, 0, np.inf], [1, np.inf, 0]]),
        ValueError,
        r"contains inf at \[1, 2\]",
    ),
    (
        np.array([[0, 1, -0.5], [1, 0, 1], [-0.5, 1, 0]]),
        ValueError,
        r"negative entry -0\.5 at \[0, 2\]; distances must be ≥ 0",
    ),
    (
        np.array([[0, 1, 0.5], [1, 0, 1], [0.7, 1, 0]]),
        ValueError,
        r"not symmetric: \[0, 2\] = 0\.5 but \[2, 0\] = 0\.7",
    ),
    (
        np.array([[0, 1, 1], [1, 0.1, 1], [1, 1, 0]]),
        ValueError,
        r"non-zero diagonal entry 0\.1 at \[1, 1\]",
    ),
    (np.ones((2, 2), dtype=np.complex128), TypeError, r"real numbers; got dtype complex128"),
    (np.array([["0", "1"], ["1", "0"]]), TypeError, r"real numbers; got dtype <U1"),
]


@pytest.mark.parametrize(
    ("D", "error", "match"),
    BAD_MATRICES,
    ids=[
        "not-square",
        "1d",
        "3d",
        "empty",
        "nan",
        "inf",
        "negative",
        "asymmetric",
        "diagonal",
        "complex",
        "str",
    ],
)
def test_bad_matrices_raise_for_every_backend(backend, D, error, match):
    with pytest.raises(error, match=match):
        tn.zero_persistence(D, backend=backend)
    with pytest.raises(error, match=match):
        tn.zero_persistence(torch.as_tensor(D) if D.dtype.kind == "f" else D, backend=backend)


@pytest.mark.parametrize("name", ["ripser", "Native", "", None, 3])
def test_unknown_backend_lists_the_valid_ones(name):
    D = np.array([[0.0, 0.3], [0.3, 0.0]])
    with pytest.raises(ValueError, match=r"not a valid persistence backend; valid backends are"):
        tn.zero_persistence(D, backend=name)
    with pytest.raises(ValueError, match=r"\('auto', 'native', 'giotto', 'gudhi', 'torch'\)"):
        tn.differentiable_deaths(torch.tensor(D), backend=name)


def test_tiny_asymmetry_within_tolerance_reads_the_upper_triangle(backend):
    D = np.array([[0.0, 0.3, 0.8], [0.3, 0.0, 0.6], [0.8, 0.6, 0.0]])
    D[1, 0] = 0.3 * (1 + 1e-12)
    bc = tn.zero_persistence(D, backend=backend)
    assert bc.deaths[0] == 0.3  # D[0, 1], not D[1, 0]
    assert bc.edges.tolist() == [[0, 1], [1, 2]]


# --------------------------------------------------------------------------- edge cases
def test_one_point(backend):
    bc = tn.zero_persistence(np.zeros((1, 1), dtype=np.float32), backend=backend)
    assert bc.n_points == 1 and len(bc) == 0
    assert bc.deaths.shape == (0,) and bc.deaths.dtype == np.float32
    assert bc.edges.shape == (0, 2)
    assert bc.to_gudhi() == [(0, (0.0, float("inf")))]
    assert bc.clusters(0.5).tolist() == [0] and bc.n_clusters(0.5) == 1
    assert bc.intervals().tolist() == [[0.0, float("inf")]]


@pytest.mark.parametrize("d", [0.0, 0.25, 7.0])
def test_two_points(backend, d):
    bc = tn.zero_persistence(np.array([[0.0, d], [d, 0.0]]), backend=backend)
    assert bc.deaths.tolist() == [d] and bc.edges.tolist() == [[0, 1]]
    assert bc.to_gudhi() == [(0, (0.0, float("inf"))), (0, (0.0, d))]
    assert bc.intervals().tolist() == [[0.0, d], [0.0, float("inf")]]
    assert bc.n_clusters(d) == 1 and bc.n_clusters(d - 0.01) == 2
    assert bc.total_persistence == d


def test_all_points_identical_give_only_zero_bars(backend):
    bc = tn.zero_persistence(np.zeros((6, 6)), backend=backend)
    assert bc.deaths.tolist() == [0.0] * 5
    assert np.all(bc.edges[:, 0] < bc.edges[:, 1])
    assert tn.zero_persistence(np.zeros((6, 6))).clusters(0.0).tolist() == [0] * 6


def test_native_breaks_ties_by_smallest_index():
    D = np.ones((5, 5)) - np.eye(5)  # every edge ties
    bc = tn.zero_persistence(D, backend="native")
    assert bc.edges.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4]]
    assert tn.zero_persistence(D, backend="auto") == bc


# --------------------------------------------------------------------------- regressions
def test_zero_length_bar_of_two_identical_neurons_is_restored(backend, rng):
    """giotto-ph and GUDHI drop the bar of two identical neurons; the wrappers restore it."""
    import gudhi
    from gph import ripser_parallel

    A = activations(rng, 40, 6)
    A[:, 4] = A[:, 1]  # neuron 4 is a copy of neuron 1
    D = tn.correlation_dissimilarity(A)
    D[1, 4] = D[4, 1] = 0.0  # exactly, whatever the rounding of ρ = 1
    # The bug being worked around: both libraries report n − 2 finite bars.
    raw_giotto = ripser_parallel(D, maxdim=0, metric="precomputed")["dgms"][0]
    assert np.isfinite(raw_giotto[:, 1]).sum() == 4
    raw_gudhi = gudhi.RipsComplex(distance_matrix=D).create_simplex_tree(1).persistence()
    assert sum(1 for _, (_, d) in raw_gudhi if np.isfinite(d)) == 4

    bc = tn.zero_persistence(D, backend=backend)
    assert len(bc.deaths) == 5 and bc.deaths[0] == 0.0
    assert bc.edges[0].tolist() == [1, 4]
    np.testing.assert_array_equal(bc.deaths, scipy_deaths(D))


@settings(max_examples=25, deadline=None)
@given(
    groups=st.lists(st.integers(0, 4), min_size=2, max_size=12),
    seed=st.integers(0, 2**16),
    lib=st.sampled_from(["giotto", "gudhi"]),
)
def test_many_zero_length_bars_are_restored_into_a_spanning_tree(groups, seed, lib):
    """Points in a few groups of copies: every copy's zero bar comes back, as scipy's MST says."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.1, 1.0, size=(5, 3))
    X = centres[groups]
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    bc = tn.zero_persistence(D, backend=lib)
    n = len(groups)
    assert bc.edges.shape == (n - 1, 2)
    ncomp, _ = connected_components(_adjacency(n, bc.edges), directed=False)
    assert ncomp == 1  # the restored edges make a spanning tree
    np.testing.assert_allclose(bc.deaths, scipy_deaths(D), rtol=0, atol=GIOTTO_F64_ATOL)
    np.testing.assert_array_equal(bc.deaths, np.sort(D[bc.edges[:, 0], bc.edges[:, 1]]))


def _adjacency(n: int, edges: np.ndarray) -> np.ndarray:
    M = np.zeros((n, n))
    M[edges[:, 0], edges[:, 1]] = 1.0
    return M


def test_giotto_restores_a_bar_that_float32_rounds_to_zero():
    """Regression: a float64 distance below 2⁻¹⁵⁰ is 0 in giotto-ph's float32 and was lost."""
    D = np.array([[0.0, 1e-50, 0.7], [1e-50, 0.0, 0.4], [0.7, 0.4, 0.0]])
    bc = tn.zero_persistence(D, backend="giotto")
    assert bc.deaths.tolist() == [1e-50, 0.4]
    assert bc.edges.tolist() == [[0, 1], [1, 2]]


# --------------------------------------------------------------------------- Barcode type
def test_barcode_validates_its_fields():
    with pytest.raises(ValueError, match=r"deaths must have shape \(2,\); got \(3,\)"):
        Barcode(deaths=[0.1, 0.2, 0.3], edges=[[0, 1], [1, 2]], n_points=3)
    with pytest.raises(ValueError, match=r"edges must have shape \(2, 2\); got \(1, 2\)"):
        Barcode(deaths=[0.1, 0.2], edges=[[0, 1]], n_points=3)
    with pytest.raises(ValueError, match=r"ascending order; deaths\[0\] = 0.5 > deaths\[1\]"):
        Barcode(deaths=[0.5, 0.2], edges=[[0, 1], [1, 2]], n_points=3)
    with pytest.raises(ValueError, match=r"0 ≤ i < j < n_points=3"):
        Barcode(deaths=[0.1, 0.2], edges=[[1, 0], [1, 2]], n_points=3)
    with pytest.raises(ValueError, match=r"finite and ≥ 0; got inf at index 1"):
        Barcode(deaths=[0.1, np.inf], edges=[[0, 1], [1, 2]], n_points=3)
    with pytest.raises(ValueError, match=r"n_points ≥ 1; got 0"):
        Barcode(deaths=[], edges=np.empty((0, 2)), n_points=0)
    with pytest.raises(TypeError, match=r"edges must be integer vertex indices"):
        Barcode(deaths=[0.1], edges=[[0.0, 1.0]], n_points=2)


def test_barcode_does_not_freeze_the_callers_arrays():
    deaths = np.array([0.1, 0.2])
    edges = np.array([[0, 1], [1, 2]])
    bc = Barcode(deaths=deaths, edges=edges, n_points=3)
    deaths[0] = 0.15  # still writable, and the barcode kept its own copy
    assert bc.deaths.tolist() == [0.1, 0.2]
    assert not bc.deaths.flags.writeable and not bc.edges.flags.writeable
    assert repr(bc) == "Barcode(n_points=3, deaths in [0.1, 0.2], backend='native')"


@pytest.mark.parametrize("backend_name", ["native", "giotto", "gudhi"])
def test_torch_thread_count_survives_correlation_and_persistence(rng, backend_name):
    """Regression: numba's OpenMP layer and giotto-ph reset torch's thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        D = tn.correlation_dissimilarity(rng.standard_normal((20, 30)))
        assert torch.get_num_threads() == 1
        tn.persistence.validate_distance_matrix(D)
        tn.zero_persistence(D, backend=backend_name)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
