"""Demšar's procedure: ranks, the Friedman and Iman–Davenport tests, the Nemenyi test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The public names are those of topo_neurons.experiments.stats, which re-exports them.

#: Scores of methods (columns) on data sets (rows): an array or nested sequences of floats.
Scores = np.ndarray | Sequence[Sequence[float]]

#: Critical values ``q_α`` of the two-tailed Nemenyi test for k = 2 … 10 methods (Demšar 2006,
#: Table 5a): the studentized range statistic (infinite degrees of freedom) divided by √2.
NEMENYI_Q: dict[float, dict[int, float]] = {
    0.05: {
        2: 1.960,
        3: 2.343,
        4: 2.569,
        5: 2.728,
        6: 2.850,
        7: 2.949,
        8: 3.031,
        9: 3.102,
        10: 3.164,
    },
    0.10: {
        2: 1.645,
        3: 2.052,
        4: 2.291,
        5: 2.459,
        6: 2.589,
        7: 2.693,
        8: 2.780,
        9: 2.855,
        10: 2.920,
    },
}


def _sps():
    """scipy.stats, imported on first use (keeps ``import topo_neurons`` light)."""
    from scipy import stats

    return stats


def _as_scores(scores: Scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 2:
        raise ValueError(
            "scores must have shape (n_datasets, n_methods) with at least 1 data set and "
            f"2 methods; got shape {s.shape}"
        )
    bad = np.argwhere(~np.isfinite(s))
    if len(bad):
        i, j = bad[0]
        raise ValueError(
            f"scores must be finite; data set {i}, method {j} is {s[i, j]} "
            f"({len(bad)} non-finite value(s) in all)"
        )
    return s


def rank_scores(scores: Scores, *, higher_is_better: bool = True) -> np.ndarray:
    """Rank the methods within each data set: 1 = best, ties get their average rank.

    Parameters
    ----------
    scores : array-like, shape (n_datasets, n_methods)
        One row per data set (here: per trained network), one column per method.
    higher_is_better : bool
        ``True`` for accuracies (the largest score gets rank 1), ``False`` for errors.

    Returns
    -------
    numpy.ndarray of float64, shape (n_datasets, n_methods)

    Examples
    --------
    >>> rank_scores([[0.9, 0.8, 0.9, 0.7]])
    array([[1.5, 3. , 1.5, 4. ]])
    """
    s = _as_scores(scores)
    return _sps().rankdata(-s if higher_is_better else s, axis=1, method="average")


def average_ranks(scores: Scores, *, higher_is_better: bool = True) -> np.ndarray:
    """Average rank of each method over the data sets: :func:`rank_scores` averaged over rows.

    ``scores`` (shape ``(n_datasets, n_methods)``) and ``higher_is_better`` are those of
    :func:`rank_scores`.

    Returns
    -------
    numpy.ndarray of float64, shape (n_methods,)
        Values in ``[1, n_methods]``; they sum to ``n_methods (n_methods + 1) / 2``.
    """
    return rank_scores(scores, higher_is_better=higher_is_better).mean(axis=0)


@dataclass(frozen=True)
class FriedmanResult:
    """Result of the Friedman test with the Iman–Davenport correction.

    Attributes
    ----------
    chi2 : float
        Friedman statistic ``χ²_F``.
    chi2_pvalue : float
        Its p-value (χ² with ``k − 1`` degrees of freedom).
    f : float
        Iman–Davenport statistic ``F_F`` (``inf`` when every data set ranks the methods
        identically and without ties).
    f_pvalue : float
        Its p-value (F with ``k − 1`` and ``(k − 1)(N − 1)`` degrees of freedom).
    average_ranks : numpy.ndarray, shape (k,)
        Average rank of each method (1 = best).
    n_datasets : int
        ``N``.
    n_methods : int
        ``k``.
    """

    chi2: float
    chi2_pvalue: float
    f: float
    f_pvalue: float
    average_ranks: np.ndarray
    n_datasets: int
    n_methods: int

    def critical_difference(self, alpha: float = 0.05) -> float:
        """Nemenyi critical difference for this ``k`` and ``N`` (:func:`critical_difference`)."""
        return critical_difference(self.n_methods, self.n_datasets, alpha)


def _iman_davenport(chi2: float, n: int, k: int) -> tuple[float, float]:
    denom = n * (k - 1) - chi2
    df1, df2 = k - 1, (k - 1) * (n - 1)
    if denom <= 1e-12 * n * k:
        return float("inf"), 0.0
    f = (n - 1) * chi2 / denom
    if df2 == 0:  # a single data set: the F distribution is undefined, nothing can be rejected
        return float(f), 1.0
    return float(f), float(_sps().f.sf(f, df1, df2))


def _friedman_result(chi2: float, avg_ranks: np.ndarray, n: int) -> FriedmanResult:
    """The result for a statistic ``χ²_F`` of ``k = len(avg_ranks)`` methods on ``n`` data sets."""
    k = len(avg_ranks)
    f, f_p = _iman_davenport(chi2, n, k)
    return FriedmanResult(
        chi2=chi2,
        chi2_pvalue=float(_sps().chi2.sf(chi2, k - 1)),
        f=f,
        f_pvalue=f_p,
        average_ranks=avg_ranks,
        n_datasets=n,
        n_methods=k,
    )


def friedman_from_ranks(avg_ranks: np.ndarray | Sequence[float], n_datasets: int) -> FriedmanResult:
    """Friedman and Iman–Davenport statistics from average ranks (no tie correction).

    This is the form in which Demšar (2006) states the test, and lets a published table of
    average ranks be checked.

    Parameters
    ----------
    avg_ranks : array-like, shape (k,)
        Average rank of each of ``k ≥ 2`` methods.
    n_datasets : int
        Number of data sets ``N`` the ranks were averaged over.

    Returns
    -------
    FriedmanResult

    Examples
    --------
    Demšar's worked example (14 data sets, 4 variants of C4.5):

    >>> r = friedman_from_ranks([3.143, 2.000, 2.893, 1.964], 14)
    >>> round(r.chi2, 2), round(r.f, 2)
    (9.28, 3.69)
    """
    R = np.asarray(avg_ranks, dtype=np.float64)
    if R.ndim != 1 or len(R) < 2:
        raise ValueError(f"avg_ranks must be a vector of k ≥ 2 average ranks; got shape {R.shape}")
    if int(n_datasets) != n_datasets or n_datasets < 1:
        raise ValueError(f"n_datasets must be a positive int; got {n_datasets!r}")
    if n_datasets < 2:
        raise ValueError(
            f"the Friedman test needs at least 2 data sets (networks) to compare {len(R)} "
            f"methods; got N = {n_datasets} (with one data set the ranks have no spread to test: "
            "the statistic's denominator N(k − 1) − χ² is 0 and F would be infinite)"
        )
    n, k = int(n_datasets), len(R)
    chi2 = 12.0 * n / (k * (k + 1)) * (np.sum(R**2) - k * (k + 1) ** 2 / 4.0)
    return _friedman_result(max(float(chi2), 0.0), R, n)


def friedman_test(
    scores: Scores,
    *,
    higher_is_better: bool = True,
    tie_correction: bool = False,
) -> FriedmanResult:
    """Friedman test of ``k`` methods over ``N`` data sets, with the Iman–Davenport statistic.

    Parameters
    ----------
    scores : array-like, shape (n_datasets, n_methods)
        One row per data set (network), one column per method (regulariser).
    higher_is_better : bool
        Direction of the scores (ranks and averages are reported with 1 = best).
    tie_correction : bool
        Divide ``χ²_F`` by ``1 − Σ(t³ − t) / (N k (k² − 1))`` over the groups of ``t`` tied
        scores, as :func:`scipy.stats.friedmanchisquare` does. Demšar's formula (the default)
        has no correction; without ties both agree.

    Returns
    -------
    FriedmanResult
    """
    s = _as_scores(scores)
    ranks = rank_scores(s, higher_is_better=higher_is_better)
    n, k = ranks.shape
    result = friedman_from_ranks(ranks.mean(axis=0), n)
    if not tie_correction:
        return result
    ties = 0.0
    for row in ranks:
        _, counts = np.unique(row, return_counts=True)
        ties += float(np.sum(counts**3 - counts))
    c = 1.0 - ties / (n * k * (k * k - 1))
    return _friedman_result(result.chi2 / c if c > 0 else 0.0, result.average_ranks, n)


def nemenyi_q(n_methods: int, alpha: float = 0.05) -> float:
    """Critical value ``q_α`` of the Nemenyi test for ``n_methods`` methods.

    Parameters
    ----------
    n_methods : int
        ``k ≥ 2``.
    alpha : float
        Significance level in (0, 1). For α ∈ {0.05, 0.10} and k ≤ 10 the value is Demšar's
        Table 5a (:data:`NEMENYI_Q`); otherwise the studentized range quantile with infinite
        degrees of freedom (:data:`scipy.stats.studentized_range`) divided by √2.

    Returns
    -------
    float

    Examples
    --------
    >>> nemenyi_q(4), nemenyi_q(7, alpha=0.10)
    (2.569, 2.693)
    """
    if int(n_methods) != n_methods or n_methods < 2:
        raise ValueError(f"n_methods must be an int ≥ 2; got {n_methods!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    table = NEMENYI_Q.get(round(float(alpha), 10))
    if table is not None and int(n_methods) in table:
        return table[int(n_methods)]
    return float(_sps().studentized_range.ppf(1.0 - alpha, int(n_methods), np.inf) / np.sqrt(2.0))


def critical_difference(n_methods: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference ``CD = q_α · sqrt(k(k+1) / (6N))`` of average ranks.

    Parameters
    ----------
    n_methods : int
        ``k``, the number of methods compared.
    n_datasets : int
        ``N``, the number of data sets the ranks are averaged over.
    alpha : float
        Significance level (see :func:`nemenyi_q`).

    Returns
    -------
    float
        In units of average rank.

    Examples
    --------
    >>> round(critical_difference(4, 14), 2)   # Demšar's worked example
    1.25
    """
    if int(n_datasets) != n_datasets or n_datasets < 1:
        raise ValueError(f"n_datasets must be a positive int; got {n_datasets!r}")
    k = int(n_methods)
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n_datasets)))


def nemenyi_groups(avg_ranks: np.ndarray | Sequence[float], cd: float) -> list[tuple[int, ...]]:
    """Maximal groups of methods whose average ranks lie within less than ``cd`` of each other.

    Methods in one group are not significantly different by the Nemenyi test; these are the
    thick bars of a critical-difference diagram.

    Parameters
    ----------
    avg_ranks : array-like, shape (k,)
    cd : float
        Critical difference (positive).

    Returns
    -------
    list of tuple of int
        Each group lists method indices in order of increasing rank; only groups of two or more
        methods, none contained in another.

    Examples
    --------
    >>> nemenyi_groups([1.0, 1.5, 3.0, 3.2], cd=1.0)
    [(0, 1), (2, 3)]
    """
    R = np.asarray(avg_ranks, dtype=np.float64)
    if not cd > 0:
        raise ValueError(f"cd must be positive; got {cd!r}")
    order = np.argsort(R, kind="stable")
    sr = R[order]
    groups: list[tuple[int, ...]] = []
    last_end = -1
    for i in range(len(sr)):
        j = i
        while j + 1 < len(sr) and sr[j + 1] - sr[i] < cd:
            j += 1
        if j > i and j > last_end:
            groups.append(tuple(int(x) for x in order[i : j + 1]))
            last_end = j
    return groups
