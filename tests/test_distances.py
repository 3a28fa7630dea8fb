"""Distances between barcodes against GUDHI and POT, and the permutation test under the null."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

import topo_neurons as tn

ot = pytest.importorskip("ot")
gudhi = pytest.importorskip("gudhi")
from gudhi.wasserstein import wasserstein_distance as gudhi_wasserstein  # noqa: E402


def _barcode(deaths) -> tn.Barcode:
    d = np.sort(np.asarray(deaths, dtype=np.float64))
    edges = np.stack([np.arange(d.size), np.arange(1, d.size + 1)], axis=1)
    return tn.Barcode(d, edges, d.size + 1)


def _random_pairs(seed: int, tied: bool):
    rng = np.random.default_rng(seed)
    for _ in range(6):
        n_a, n_b = rng.integers(1, 12, size=2)
        a, b = rng.uniform(0, 1, n_a), rng.uniform(0, 1, n_b)
        if tied:  # values on a coarse grid: many equal deaths within and across the barcodes
            a, b = np.round(a * 4) / 4, np.round(b * 4) / 4
        yield _barcode(a), _barcode(b)
    yield _barcode([]), _barcode(rng.uniform(0, 1, 3))  # a one-point barcode


def _point_distance(x, y, q):
    return float(np.linalg.norm(np.asarray(x) - np.asarray(y), ord=q))


def _to_diagonal(x, q):
    """L_q distance of (b, d) to its nearest point on the diagonal, ((b+d)/2, (b+d)/2)."""
    m = (x[0] + x[1]) / 2
    return _point_distance(x, (m, m), q)


def _augmented_cost(A, B, q):
    """The (n_a + n_b)² cost of the matching with the diagonal: row i < n_a is a bar of A, a
    row beyond is the diagonal copy of a bar of B; columns likewise with B and A."""
    n_a, n_b = len(A), len(B)
    big = 1e3  # never matched (a perfect matching of finite costs ≤ 2 exists); not huge,
    # so that POT's network simplex keeps its precision
    M = np.full((n_a + n_b, n_b + n_a), big)
    for i, x in enumerate(A):
        for j, y in enumerate(B):
            M[i, j] = _point_distance(x, y, q)
        M[i, n_b + i] = _to_diagonal(x, q)
    for j, y in enumerate(B):
        M[n_a + j, j] = _to_diagonal(y, q)
    M[n_a:, n_b:] = 0.0
    return M


def _pot_wasserstein(a: tn.Barcode, b: tn.Barcode, p: float, q: float) -> float:
    """POT's exact optimal transport on the augmented cost matrix."""
    A, B = a.intervals(False), b.intervals(False)
    n = len(A) + len(B)
    if n == 0:
        return 0.0
    M = _augmented_cost(A, B, q) ** p
    w = np.full(n, 1.0 / n)
    return float((ot.emd2(w, w, M) * n) ** (1 / p))


def _bottleneck_by_matching(a: tn.Barcode, b: tn.Barcode) -> float:
    """The smallest cost c such that the augmented bipartite graph with edges of cost ≤ c has a
    perfect matching (scipy's Hopcroft–Karp), L∞ ground metric."""
    A, B = a.intervals(False), b.intervals(False)
    n = len(A) + len(B)
    if n == 0:
        return 0.0
    M = _augmented_cost(A, B, np.inf)
    for c in np.unique(M[M < 1e3]):
        graph = csr_matrix((M <= c + 1e-15).astype(np.int8))
        if np.all(maximum_bipartite_matching(graph, perm_type="column") >= 0):
            return float(c)
    raise AssertionError("no perfect matching")


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize(("order", "internal_p"), [(1, np.inf), (2, np.inf), (1, 2), (2, 1)])
def test_wasserstein_equals_pot_and_gudhi_with_the_infinite_bars(tied, order, internal_p):
    for a, b in _random_pairs(order * 10 + int(tied), tied):
        got = a.distance(b, order=order, internal_p=internal_p)
        np.testing.assert_allclose(got, _pot_wasserstein(a, b, order, internal_p), atol=1e-9)
        # GUDHI given the whole diagrams, infinite bars included: the same distance
        ref = gudhi_wasserstein(a.intervals(), b.intervals(), order=order, internal_p=internal_p)
        np.testing.assert_allclose(got, ref, atol=1e-12)


@pytest.mark.parametrize("tied", [False, True])
def test_bottleneck_equals_a_matching_search_and_gudhi_with_the_infinite_bars(tied):
    for a, b in _random_pairs(7 + int(tied), tied):
        got = a.distance(b, metric="bottleneck")
        np.testing.assert_allclose(got, _bottleneck_by_matching(a, b), atol=1e-12)
        ref = gudhi.bottleneck_distance(a.intervals(), b.intervals())
        np.testing.assert_allclose(got, ref, atol=1e-12)


def test_distances_of_barcodes_computed_from_tied_matrices():
    """Barcodes of integer distance matrices (ties everywhere) from the library itself."""
    rng = np.random.default_rng(3)
    bars = []
    for n in (6, 9, 9, 12):
        X = rng.integers(1, 4, size=(n, n)).astype(np.float64)
        D = np.triu(X, 1) + np.triu(X, 1).T
        bars.append(tn.zero_persistence(D))
    M = tn.barcode_distances(bars)
    for i, j in combinations(range(len(bars)), 2):
        np.testing.assert_allclose(M[i, j], _pot_wasserstein(bars[i], bars[j], 1, np.inf))
    B = tn.barcode_distances(bars, metric="bottleneck")
    for i, j in combinations(range(len(bars)), 2):
        np.testing.assert_allclose(B[i, j], _bottleneck_by_matching(bars[i], bars[j]), atol=1e-12)


def test_pairwise_matrix_is_the_pairwise_distances():
    rng = np.random.default_rng(0)
    bars = [_barcode(rng.uniform(0, 1, k)) for k in (3, 5, 8, 2)]
    M = tn.barcode_distances(bars, order=2)
    assert M.shape == (4, 4) and M.dtype == np.float64
    np.testing.assert_array_equal(M, M.T)
    np.testing.assert_array_equal(np.diag(M), 0.0)
    for i, j in combinations(range(4), 2):
        assert M[i, j] == bars[i].distance(bars[j], order=2) > 0


def test_bad_options_are_named():
    a = _barcode([0.1, 0.2])
    with pytest.raises(ValueError, match=r"metric='l2'.*bottleneck"):
        a.distance(a, metric="l2")
    with pytest.raises(ValueError, match=r"order=0.5"):
        a.distance(a, order=0.5)
    with pytest.raises(ValueError, match=r"order=2.*wasserstein"):
        a.distance(a, metric="bottleneck", order=2)
    with pytest.raises(ValueError, match=r"internal_p=2.*L∞"):
        a.distance(a, metric="bottleneck", internal_p=2)
    with pytest.raises(TypeError, match="Barcode"):
        a.distance(np.array([0.1]))
    with pytest.raises(TypeError, match="sequence of Barcode"):
        tn.barcode_distances(a)


# ----------------------------------------------------------------------------- the test
def _group(rng, k, shift=0.0):
    return [_barcode(np.clip(rng.beta(2, 5, 12) + shift, 0, 1)) for _ in range(k)]


def test_permutation_p_value_is_uniform_under_the_null():
    rng = np.random.default_rng(2024)
    pvals = []
    for _ in range(200):
        res = tn.barcode_permutation_test(
            _group(rng, 4), _group(rng, 5), metric="bottleneck", n_permutations=99, seed=rng
        )
        assert not res.exact and res.n_permutations == 99
        pvals.append(res.p_value)
    pvals = np.array(pvals)
    # random relabellings with the +1: p is uniform on {1/100, …, 1} under exchangeability
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert abs(np.mean(pvals <= 0.1) - 0.1) < 0.06


def test_permutation_test_finds_shifted_groups():
    rng = np.random.default_rng(1)
    res = tn.barcode_permutation_test(_group(rng, 6), _group(rng, 6, shift=0.2),
                                      n_permutations=199, seed=0)  # fmt: skip
    assert not res.exact
    assert res.p_value == 1 / 200  # no relabelling reaches the observed separation
    assert res.statistic > 0 and res.null.shape == (199,)


def test_exact_test_enumerates_every_split():
    rng = np.random.default_rng(5)
    a, b = _group(rng, 3), _group(rng, 3, shift=0.3)
    res = tn.barcode_permutation_test(a, b)  # C(6, 3) = 20 ≤ 999 splits
    assert res.exact and res.n_permutations == 20
    D = res.distances

    def stat(members):  # between minus within, written out
        rest = [i for i in range(6) if i not in members]
        between = np.mean([D[i, j] for i in members for j in rest])
        within = [D[i, j] for g in (members, rest) for i, j in combinations(g, 2)]
        return between - np.mean(within)

    null = [stat(list(m)) for m in combinations(range(6), 3)]
    np.testing.assert_allclose(sorted(res.null), sorted(null), atol=1e-12)
    np.testing.assert_allclose(res.statistic, stat([0, 1, 2]), atol=1e-12)
    assert res.p_value == pytest.approx(np.mean(np.array(null) >= stat([0, 1, 2]) - 1e-12))
    assert res.p_value == 0.1  # the split and its mirror image: the smallest p with 3 vs 3
    np.testing.assert_allclose(D, tn.barcode_distances(a + b))


def test_random_relabellings_follow_the_seed():
    rng = np.random.default_rng(9)
    a, b = _group(rng, 5), _group(rng, 5)
    r1 = tn.barcode_permutation_test(a, b, n_permutations=50, seed=3)
    r2 = tn.barcode_permutation_test(a, b, n_permutations=50, seed=3)
    np.testing.assert_array_equal(r1.null, r2.null)
    assert r1.p_value == r2.p_value and 0 < r1.p_value <= 1
    assert math.isclose(r1.p_value * 51, round(r1.p_value * 51))


def test_permutation_test_rejects_small_groups_and_bad_counts():
    a = [_barcode([0.1, 0.2]), _barcode([0.3, 0.4])]
    with pytest.raises(ValueError, match="group_b needs at least 2"):
        tn.barcode_permutation_test(a, a[:1])
    with pytest.raises(ValueError, match="n_permutations=0"):
        tn.barcode_permutation_test(a, a, n_permutations=0)


# ----------------------------------------------------------------------------- the command
def test_compare_test_command(tmp_path, capsys):
    import json

    from topo_neurons.cli import main

    rng = np.random.default_rng(4)
    paths, groups = [], []
    for g, shift in (("none", 0.0), ("T1", 0.3)):
        for k, bc in enumerate(_group(rng, 3, shift)):
            path = tmp_path / f"{g}_{k}.npz"
            bc.save(path)
            paths.append(str(path))
            groups.append(g)
    code = main(["compare", *paths, "--groups", *groups, "--test", "--out", str(tmp_path / "o"),
                 "--formats", "svg"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads((tmp_path / "o" / "compare_test.json").read_text())
    ref = tn.barcode_permutation_test(
        [tn.Barcode.load(p) for p in paths[:3]], [tn.Barcode.load(p) for p in paths[3:]]
    )
    assert record["p_value"] == ref.p_value == 0.1 and record["exact"]
    np.testing.assert_allclose(record["statistic"], ref.statistic)
    assert record["groups"] == {
        "none": ["none_0", "none_1", "none_2"],
        "T1": ["T1_0", "T1_1", "T1_2"],
    }
    assert "p = 0.1 (20 splits, all of them)" in out and "compare_test.json" in out

    for extra, message in [
        ([], "--test needs --groups"),
        (["--groups", "a", "b", "c", "a", "b", "c"], "--groups must name exactly two groups"),
        (["--groups", "a", "b", "b", "b", "b", "b"], "group 'a' has 1 barcode file(s)"),
    ]:
        code = main(["compare", *paths, "--test", *extra, "--out", str(tmp_path / "p")])
        err = capsys.readouterr().err
        assert code == 2 and f"error: {message}" in err, err


def test_reproduce_reports_the_barcode_distance_to_none():
    """The line reproduce adds to results.md: each barcode network against none's."""
    from types import SimpleNamespace

    import torch

    from topo_neurons.experiments.reproduction._reproduce import _distances_to_none

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6)).astype(np.float32)
    nets = {}
    for k, reg in enumerate(("none", "t1", "t2")):
        torch.manual_seed(k)
        nets[reg] = (torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(),
                                         torch.nn.Linear(12, 3)), {})  # fmt: skip
    line = _distances_to_none(nets, SimpleNamespace(X_train=X), "abs", ("t", "m", 0))
    # the reference: the neurons (ReLU outputs and logits) recorded by hand, GUDHI's distance
    bars = {}
    for reg, (model, _) in nets.items():
        with torch.no_grad():
            h = model[1](model[0](torch.from_numpy(X)))
            A = torch.cat([h, model[2](h)], dim=1).double().numpy()
        bars[reg] = tn.correlation_persistence(A)
    for reg, label in (("t1", "T1"), ("t2", "T2")):
        value = float(line.split(f"{label} ")[1].split(",")[0].rstrip("."))
        ref = gudhi_wasserstein(bars[reg].intervals(False), bars["none"].intervals(False))
        np.testing.assert_allclose(value, ref, rtol=1e-3)  # the line prints 4 digits
    assert line.startswith("Barcode distance to none's") and "t / m / seed 0" in line
