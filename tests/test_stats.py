"""Friedman / Iman–Davenport / Nemenyi statistics and the CD diagram.

References: Demšar (JMLR 2006) section 3.2.4 worked example (Table 6, 14 data sets × 4 variants
of C4.5), scipy.stats.friedmanchisquare, scipy.stats.studentized_range and first principles.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from topo_neurons.experiments import stats as S

matplotlib.use("Agg")

# Demšar (2006), Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 UCI data sets.
DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array(
    [
        [0.763, 0.768, 0.771, 0.798],  # adult (sample)
        [0.599, 0.591, 0.590, 0.569],  # breast cancer
        [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
        [0.628, 0.661, 0.654, 0.657],  # cmc
        [0.882, 0.888, 0.886, 0.898],  # ionosphere
        [0.936, 0.931, 0.916, 0.931],  # iris
        [0.661, 0.668, 0.609, 0.685],  # liver disorders
        [0.583, 0.583, 0.563, 0.625],  # lung cancer
        [0.775, 0.838, 0.866, 0.875],  # lymphography
        [1.000, 1.000, 1.000, 1.000],  # mushroom
        [0.940, 0.962, 0.965, 0.962],  # primary tumor
        [0.619, 0.666, 0.614, 0.669],  # rheumatism
        [0.972, 0.981, 0.975, 0.975],  # voting
        [0.957, 0.978, 0.946, 0.970],  # wine
    ]
)
# The paper's ranks break the voting tie between C4.5+cf and C4.5+m+cf (2, 3): unrounded AUCs.
DEMSAR_AUC_PAPER_TIES = DEMSAR_AUC.copy()
DEMSAR_AUC_PAPER_TIES[12, 2] = 0.97501


def test_ranks_of_rows_by_hand():
    # rows with ties: iris (0.931 twice), lung cancer, mushroom (all four tied), voting
    R = S.rank_scores(DEMSAR_AUC)
    np.testing.assert_array_equal(R[0], [4, 3, 2, 1])
    np.testing.assert_array_equal(R[5], [1, 2.5, 4, 2.5])
    np.testing.assert_array_equal(R[7], [2.5, 2.5, 4, 1])
    np.testing.assert_array_equal(R[9], [2.5, 2.5, 2.5, 2.5])
    np.testing.assert_array_equal(R[12], [4, 1, 2.5, 2.5])
    np.testing.assert_array_equal(S.rank_scores(-DEMSAR_AUC, higher_is_better=False), R)


def test_demsar_average_ranks_and_statistics():
    r = S.friedman_test(DEMSAR_AUC_PAPER_TIES)
    # Demšar: average ranks 3.143, 2.000, 2.893, 1.964; χ²_F = 9.28; F_F = 3.69
    np.testing.assert_allclose(r.average_ranks, [44 / 14, 2.0, 40.5 / 14, 27.5 / 14])
    np.testing.assert_allclose(r.average_ranks, [3.143, 2.000, 2.893, 1.964], atol=5e-4)
    assert round(r.chi2, 2) == 9.28
    assert round(r.f, 2) == 3.69
    assert (r.n_datasets, r.n_methods) == (14, 4)
    # F_F with (3, 39) degrees of freedom; Demšar's critical value F(3, 39) at 0.05 is 2.85
    assert sps.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=5e-3)
    assert r.f_pvalue < 0.05
    assert r.f_pvalue == pytest.approx(sps.f.sf(r.f, 3, 39))
    assert r.chi2_pvalue == pytest.approx(sps.chi2.sf(r.chi2, 3))


def test_demsar_from_published_ranks_and_cd():
    r = S.friedman_from_ranks([3.143, 2.000, 2.893, 1.964], 14)
    assert round(r.chi2, 2) == 9.28
    assert round(r.f, 2) == 3.69
    # CD = 2.569 · sqrt(4·5 / (6·14)) = 1.25
    assert round(S.critical_difference(4, 14), 2) == 1.25
    assert r.critical_difference() == pytest.approx(2.569 * np.sqrt(20 / 84))
    # α = 0.10: q = 2.291, CD = 1.12 (Demšar's text)
    assert round(S.critical_difference(4, 14, alpha=0.10), 2) == 1.12


def test_first_principles_formula_on_printed_table():
    # the table as printed (voting tie kept): ranks 44, 28, 41, 27 over 14 data sets
    r = S.friedman_test(DEMSAR_AUC)
    R = np.array([44, 28, 41, 27]) / 14
    np.testing.assert_allclose(r.average_ranks, R)
    n, k = 14, 4
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(R**2) - k * (k + 1) ** 2 / 4)
    assert r.chi2 == pytest.approx(chi2)
    assert r.f == pytest.approx((n - 1) * chi2 / (n * (k - 1) - chi2))


def test_tie_corrected_matches_scipy_on_demsar_table():
    r = S.friedman_test(DEMSAR_AUC, tie_correction=True)
    ref = sps.friedmanchisquare(*DEMSAR_AUC.T)
    assert r.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert r.chi2_pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    # the correction only increases χ² when there are ties
    assert r.chi2 > S.friedman_test(DEMSAR_AUC).chi2


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    n=st.integers(2, 12),
    k=st.integers(3, 8),
    seed=st.integers(0, 2**31 - 1),
    higher=st.booleans(),
)
def test_matches_scipy_friedmanchisquare(n, k, seed, higher):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=(n, k)).astype(float)  # many ties
    ours = S.friedman_test(scores, higher_is_better=higher, tie_correction=True)
    if np.all(scores == scores[:, :1]):
        assert ours.chi2 == 0.0
        return
    ref = sps.friedmanchisquare(*scores.T)
    assert ours.chi2 == pytest.approx(ref.statistic, rel=1e-9, abs=1e-9)
    # without ties Demšar's formula and scipy agree
    cont = rng.standard_normal((n, k))
    assert S.friedman_test(cont).chi2 == pytest.approx(
        sps.friedmanchisquare(*cont.T).statistic, rel=1e-9
    )
    # ranks sum to k(k+1)/2 on every row
    np.testing.assert_allclose(
        S.rank_scores(scores, higher_is_better=higher).sum(axis=1), k * (k + 1) / 2
    )


def test_nemenyi_table_matches_studentized_range():
    for alpha, table in S.NEMENYI_Q.items():
        for k, q in table.items():
            ref = sps.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
            assert q == pytest.approx(ref, abs=1e-3), (alpha, k)
    # beyond the table: computed
    assert S.nemenyi_q(12) == pytest.approx(
        sps.studentized_range.ppf(0.95, 12, np.inf) / np.sqrt(2)
    )
    assert S.nemenyi_q(11, alpha=0.10) > S.nemenyi_q(10, alpha=0.10)
    # k = 2 reduces to the normal quantile
    assert S.nemenyi_q(2) == pytest.approx(sps.norm.ppf(0.975), abs=1e-3)


def test_perfect_agreement_gives_infinite_f():
    scores = np.tile([3.0, 2.0, 1.0], (5, 1))
    r = S.friedman_test(scores)
    assert r.chi2 == pytest.approx(5 * 2)  # N (k − 1)
    assert r.f == float("inf") and r.f_pvalue == 0.0
    np.testing.assert_array_equal(r.average_ranks, [1, 2, 3])


def test_nemenyi_groups_by_hand():
    assert S.nemenyi_groups([1.0, 1.5, 3.0, 3.2], cd=1.0) == [(0, 1), (2, 3)]
    assert S.nemenyi_groups([1.0, 2.0, 3.0], cd=0.5) == []
    # Demšar: with CD = 1.25 the four C4.5 variants form overlapping groups
    R = S.average_ranks(DEMSAR_AUC_PAPER_TIES)
    groups = S.nemenyi_groups(R, 1.25)
    for g in groups:
        assert np.ptp(R[list(g)]) < 1.25
    # C4.5 (3.143) and C4.5+m+cf (1.964) differ by < 1.25: one group holds all four
    assert groups == [(3, 1, 2, 0)]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: S.friedman_test([[1.0, 2.0, np.nan]]), r"data set 0, method 2 is nan"),
        (lambda: S.friedman_test([1.0, 2.0]), r"shape \(n_datasets, n_methods\)"),
        (lambda: S.friedman_test([[1.0]]), r"at least 1 data set and 2 methods"),
        (lambda: S.nemenyi_q(1), r"n_methods must be an int ≥ 2"),
        (lambda: S.nemenyi_q(4, alpha=1.5), r"alpha must lie in \(0, 1\)"),
        (lambda: S.critical_difference(4, 0), r"n_datasets must be a positive int"),
        (lambda: S.friedman_from_ranks([1.0], 3), r"k ≥ 2"),
        (lambda: S.plot_cd_diagram([1, 2], ["a"], 1.0), r"names has 1 entries"),
        (lambda: S.plot_cd_diagram([1, 2], ["a", "b"], -1.0), r"cd must be a positive"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_cd_diagram_artists():
    import matplotlib.pyplot as plt

    R = S.average_ranks(DEMSAR_AUC_PAPER_TIES)
    cd = S.critical_difference(4, 14)
    fig, ax = plt.subplots()
    out = S.plot_cd_diagram(R, DEMSAR_NAMES, cd, ax=ax, title="Demšar")
    assert out is ax
    texts = {t.get_text() for t in ax.texts}
    assert len(R) == len(DEMSAR_NAMES) == 4
    for name, r in zip(DEMSAR_NAMES, R):
        assert f"{name} ({r:.2f})" in texts
    assert "CD = 1.25" in texts
    (bar,) = [ln for ln in ax.lines if ln.get_gid() == "cd-bar"]
    x = bar.get_xdata()
    assert x[1] - x[0] == pytest.approx(cd)
    groups = [ln for ln in ax.lines if ln.get_gid() == "nemenyi-group"]
    assert len(groups) == len(S.nemenyi_groups(R, cd)) == 1
    gx = groups[0].get_xdata()
    assert gx[0] < R.min() and gx[1] > R.max()
    # each method's label line ends at its rank on the axis
    for r in R:
        assert any(
            len(ln.get_xdata()) == 3 and ln.get_xdata()[0] == pytest.approx(r) for ln in ax.lines
        )
    assert ax.get_title() == "Demšar"
    plt.close(fig)


def test_cd_diagram_new_figure_left_right_halves():
    import matplotlib.pyplot as plt

    R = np.array([2.2, 3.1, 4.0, 4.4, 4.6, 5.1, 4.6])
    names = ["none", "L1", "L2", "Corr", "T1", "T2", "DeCov"]
    ax = S.plot_cd_diagram(R, names, 2.5)
    label = {t.get_text().split(" (")[0]: t for t in ax.texts if "(" in t.get_text()}
    # the best four (ranks 2.2 … 4.4) hang to the left, the rest to the right
    left = {n for n, t in label.items() if t.get_ha() == "right"}
    assert left == {"none", "L1", "L2", "Corr"}
    plt.close(ax.figure)


def test_friedman_test_on_one_network_refuses():
    """Issue 11: ``tn.friedman_test`` on one network returned f=inf, p=0; N < 2 is refused."""
    with pytest.raises(ValueError, match=r"at least 2 data sets \(networks\).*got N = 1"):
        S.friedman_test([[0.9, 0.8, 0.7]])
    with pytest.raises(ValueError, match=r"got N = 1"):
        S.friedman_from_ranks([1.0, 2.0, 3.0], 1)
    assert S.friedman_test([[0.9, 0.8, 0.7], [0.7, 0.8, 0.9]]).chi2 == 0.0
