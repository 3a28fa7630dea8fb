"""Distances between barcodes (GUDHI's Wasserstein and bottleneck) and a permutation test.

The matchings are GUDHI's, not re-derived here: :func:`gudhi.wasserstein.wasserstein_distance`
(which solves the optimal transport with POT, ``pip install topo_neurons[distances]``) and
:func:`gudhi.bottleneck_distance`.

**The infinite bar.** Every 0-dimensional barcode has exactly one infinite bar ``[0, ∞)``.
GUDHI matches the essential (infinite) points of two diagrams with each other, at the cost of
their finite coordinates, ``|0 − 0| = 0`` here; so the distance between two barcodes is the
distance between their finite bars, and that is what is passed to GUDHI (the tests check
that passing the infinite bars too gives the same value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from .._options import check_choice

#: A :class:`~topo_neurons.Barcode` (not imported: ``_barcode`` imports this module for
#: ``Barcode.distance``; barcodes are recognised by their fields).
Barcode = Any

__all__ = [
    "METRICS",
    "PermutationTestResult",
    "barcode_distance",
    "barcode_distances",
    "barcode_permutation_test",
]

#: Values of ``metric``.
METRICS: tuple[str, ...] = ("wasserstein", "bottleneck")


def _check_options(metric: str, order: float | None, internal_p: float) -> tuple[float, float]:
    check_choice("metric", metric, METRICS)
    if isinstance(internal_p, bool) or not isinstance(internal_p, (int, float, np.floating)):
        raise TypeError(f"internal_p must be a number in [1, inf]; got {internal_p!r}")
    internal_p = float(internal_p)
    if not internal_p >= 1:
        raise ValueError(f"internal_p={internal_p!r} is not valid; it must be in [1, inf]")
    if metric == "bottleneck":
        if order not in (None, math.inf):
            raise ValueError(
                f"order={order!r} applies to metric='wasserstein'; the bottleneck distance is "
                "the order-inf Wasserstein distance (leave order=None)"
            )
        if internal_p != math.inf:
            raise ValueError(
                f"internal_p={internal_p!r}: GUDHI's bottleneck distance uses the L∞ ground "
                "metric only (internal_p=inf); use metric='wasserstein' for another"
            )
        return math.inf, internal_p
    order = 1.0 if order is None else order
    if isinstance(order, bool) or not isinstance(order, (int, float, np.floating)):
        raise TypeError(f"order must be a number in [1, inf); got {order!r}")
    order = float(order)
    if not 1 <= order < math.inf:
        raise ValueError(
            f"order={order!r} is not valid; it must be in [1, inf) (the order-inf Wasserstein "
            "distance is metric='bottleneck')"
        )
    return order, internal_p


def _is_barcode(bc: object) -> bool:
    """A :class:`Barcode` (or a barcode-like object: ``deaths`` and ``n_points``). Checked by
    its fields: ``_barcode`` imports this module (``Barcode.distance``), not the reverse."""
    return hasattr(bc, "deaths") and hasattr(bc, "n_points")


def _check_barcode(bc: object, what: str) -> Barcode:
    if not _is_barcode(bc):
        raise TypeError(f"{what} must be a Barcode; got {type(bc).__name__}")
    return bc  # type: ignore[return-value]


def _finite_diagram(bc: Barcode) -> np.ndarray:
    """The finite bars as GUDHI's ``(k, 2)`` float64 array of ``[birth, death]`` rows."""
    d = np.asarray(bc.deaths, dtype=np.float64)
    return np.stack([np.zeros_like(d), d], axis=1)


def _wasserstein():
    try:
        from gudhi.wasserstein import wasserstein_distance
    except ImportError as exc:  # gudhi.wasserstein imports POT (the module ``ot``)
        raise ImportError(
            f"the Wasserstein distance between barcodes needs GUDHI's gudhi.wasserstein and "
            f"POT ({exc}); install them with: pip install topo_neurons[distances]"
        ) from exc
    return wasserstein_distance


def _distance(a: np.ndarray, b: np.ndarray, metric: str, order: float, internal_p: float) -> float:
    if metric == "bottleneck":
        import gudhi

        return float(gudhi.bottleneck_distance(a, b, e=0.0))
    return float(_wasserstein()(a, b, order=order, internal_p=internal_p))


def barcode_distance(
    a: Barcode,
    b: Barcode,
    metric: str = "wasserstein",
    order: float | None = None,
    internal_p: float = math.inf,
) -> float:
    r"""The Wasserstein or bottleneck distance between two barcodes, computed by GUDHI.

    The bars are points ``(0, d)`` of the persistence diagram; a bar matched to no bar of the
    other barcode is matched to the diagonal. The infinite bars of the two barcodes are
    matched with each other at cost 0 (see the module docstring), so only the finite bars
    count. The number of points of the two barcodes may differ.

    .. math::

        W_{p,q}(A, B) = \Bigl(\min_{\gamma} \sum_{x} \lVert x - \gamma(x) \rVert_q^p\Bigr)^{1/p},

    over the matchings ``γ`` of the bars of ``A`` with those of ``B`` or the diagonal
    (``p = order``, ``q = internal_p``); the bottleneck distance is the ``p = ∞`` case with
    ``q = ∞``. With ``q = ∞`` a bar ``[0, d)`` is ``d / 2`` from the diagonal and two bars
    ``|d − d'|`` apart.

    Parameters
    ----------
    a, b : Barcode
    metric : {"wasserstein", "bottleneck"}, default "wasserstein"
        ``"wasserstein"``: :func:`gudhi.wasserstein.wasserstein_distance` (POT solves the
        matching; ``pip install topo_neurons[distances]``). ``"bottleneck"``:
        :func:`gudhi.bottleneck_distance` with ``e=0``, its exact algorithm
        (GUDHI's default ``e`` returns the smallest positive double, not 0, for equal
        barcodes).
    order : float, optional
        ``p ≥ 1`` of the Wasserstein distance (default 1); ``None`` for the bottleneck.
    internal_p : float, default inf
        The ground metric ``L_q`` between points of the diagrams, ``q ∈ [1, ∞]`` (GUDHI's
        default ``∞``). The bottleneck distance takes ``∞`` only.

    Returns
    -------
    float
        In the units of the deaths (dissimilarities).

    Examples
    --------
    >>> import numpy as np
    >>> from topo_neurons import Barcode
    >>> a = Barcode(np.array([0.2, 0.5]), np.array([[0, 1], [1, 2]]), 3)
    >>> b = Barcode(np.array([0.3]), np.array([[0, 1]]), 2)
    >>> round(a.distance(b), 6)  # 0.5 ↔ 0.3 costs 0.2, 0.2 ↔ the diagonal 0.1
    0.3
    >>> round(a.distance(b, metric="bottleneck"), 6)  # the largest cost of that matching
    0.2
    """
    order_, internal_p_ = _check_options(metric, order, internal_p)
    a = _check_barcode(a, "a")
    b = _check_barcode(b, "b")
    return _distance(_finite_diagram(a), _finite_diagram(b), metric, order_, internal_p_)


def barcode_distances(
    barcodes: Sequence[Barcode],
    metric: str = "wasserstein",
    order: float | None = None,
    internal_p: float = math.inf,
) -> np.ndarray:
    """The matrix of pairwise distances between barcodes (see :func:`barcode_distance`).

    Parameters
    ----------
    barcodes : sequence of Barcode, length k
    metric, order, internal_p
        As in :func:`barcode_distance`.

    Returns
    -------
    numpy.ndarray of float64, shape (k, k)
        Symmetric, zero on the diagonal; entry ``(i, j)`` is
        ``barcode_distance(barcodes[i], barcodes[j], ...)`` (each pair computed once).
    """
    order_, internal_p_ = _check_options(metric, order, internal_p)
    if _is_barcode(barcodes) or not isinstance(barcodes, Sequence):
        raise TypeError(
            f"barcodes must be a sequence of Barcode objects; got {type(barcodes).__name__}"
        )
    diagrams = [
        _finite_diagram(_check_barcode(bc, f"barcodes[{i}]")) for i, bc in enumerate(barcodes)
    ]
    k = len(diagrams)
    out = np.zeros((k, k), dtype=np.float64)
    for i, j in combinations(range(k), 2):
        out[i, j] = out[j, i] = _distance(diagrams[i], diagrams[j], metric, order_, internal_p_)
    return out


@dataclass(frozen=True)
class PermutationTestResult:
    """What :func:`barcode_permutation_test` returns (a frozen dataclass: read it by name).

    Attributes
    ----------
    statistic : float
        Mean distance between the groups minus mean distance within them.
    p_value : float
        The share of relabellings whose statistic is at least the observed one (see
        :func:`barcode_permutation_test`).
    n_permutations : int
        Relabellings drawn (random), or the number of distinct splits (``exact``).
    exact : bool
        Whether every split of the barcodes into groups of the two sizes was enumerated.
    metric : str
    distances : numpy.ndarray, shape (n_a + n_b, n_a + n_b)
        The distance matrix, group ``a`` first.
    null : numpy.ndarray, shape (n_permutations,)
        The statistic of each relabelling.
    """

    statistic: float
    p_value: float
    n_permutations: int
    exact: bool
    metric: str
    distances: np.ndarray = field(repr=False)
    null: np.ndarray = field(repr=False)


def _statistics(D: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Between-group minus within-group mean distance of each row of ``labels`` (P, N),
    boolean (True: group a)."""
    X = labels.astype(np.float64)
    Y = 1.0 - X
    n_a = X.sum(axis=1)
    n_b = Y.sum(axis=1)
    XD, YD = X @ D, Y @ D
    within_a = np.einsum("pi,pi->p", XD, X) / 2
    within_b = np.einsum("pi,pi->p", YD, Y) / 2
    between = np.einsum("pi,pi->p", XD, Y)
    n_within = n_a * (n_a - 1) / 2 + n_b * (n_b - 1) / 2
    return between / (n_a * n_b) - (within_a + within_b) / n_within


def barcode_permutation_test(
    group_a: Sequence[Barcode],
    group_b: Sequence[Barcode],
    *,
    metric: str = "wasserstein",
    order: float | None = None,
    internal_p: float = math.inf,
    n_permutations: int = 999,
    seed: int | np.random.Generator | None = None,
) -> PermutationTestResult:
    """Two-sample permutation test: do two groups of barcodes differ?

    E.g. the barcodes of 3 seeds trained without a regulariser against 3 seeds trained with T1.
    The statistic is the mean distance between a barcode of ``a`` and one of ``b`` minus the
    mean distance between two barcodes of the same group (:func:`barcode_distances`); it is
    large when the groups are apart. Its null distribution comes from relabelling the
    barcodes (the group sizes kept):

    * when the number of distinct splits, ``C(n_a + n_b, n_a)``, is at most
      ``n_permutations``, every split is enumerated (``exact=True``) and the p-value is the
      share of splits, the observed one included, whose statistic is at least the observed
      one (with 3 against 3: 20 splits, the observed split and its mirror image both count, so
      the smallest p-value is 0.1);
    * otherwise ``n_permutations`` random relabellings are drawn and
      ``p = (1 + #{null ≥ observed}) / (1 + n_permutations)`` (the +1 counts the observed
      labelling, so that the p-value is valid: ``P(p ≤ α) ≤ α`` under the null).

    "At least" allows a relative ``1e-12`` for rounding (a relabelling equal to the observed
    one up to the order of a sum counts).

    Parameters
    ----------
    group_a, group_b : sequence of Barcode
        At least 2 barcodes each.
    metric, order, internal_p
        As in :func:`barcode_distance`.
    n_permutations : int, default 999
        Random relabellings (≥ 1), or the bound below which every split is enumerated.
    seed : int or numpy.random.Generator, optional
        For the random relabellings.

    Returns
    -------
    PermutationTestResult
    """
    for what, group in (("group_a", group_a), ("group_b", group_b)):
        if _is_barcode(group) or not isinstance(group, Sequence):
            raise TypeError(
                f"{what} must be a sequence of Barcode objects; got {type(group).__name__}"
            )
        if len(group) < 2:
            raise ValueError(f"{what} needs at least 2 barcodes; got {len(group)}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)):
        raise TypeError(f"n_permutations must be an int ≥ 1; got {n_permutations!r}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} is not valid; it must be ≥ 1")
    n_a, n_b = len(group_a), len(group_b)
    n = n_a + n_b
    D = barcode_distances(list(group_a) + list(group_b), metric, order, internal_p)
    observed_labels = np.zeros((1, n), dtype=bool)
    observed_labels[0, :n_a] = True
    observed = float(_statistics(D, observed_labels)[0])
    tol = 1e-12 * max(1.0, float(np.abs(D).max()))
    n_splits = math.comb(n, n_a)
    if n_splits <= n_permutations:
        labels = np.zeros((n_splits, n), dtype=bool)
        for row, members in enumerate(combinations(range(n), n_a)):
            labels[row, list(members)] = True
        null = _statistics(D, labels)
        p = float(np.count_nonzero(null >= observed - tol)) / n_splits
        exact = True
    else:
        rng = np.random.default_rng(seed)
        labels = np.zeros((n_permutations, n), dtype=bool)
        for row in range(n_permutations):
            labels[row, rng.permutation(n)[:n_a]] = True
        null = _statistics(D, labels)
        p = (1.0 + np.count_nonzero(null >= observed - tol)) / (1.0 + n_permutations)
        exact = False
    return PermutationTestResult(
        statistic=observed,
        p_value=float(p),
        n_permutations=int(null.size),
        exact=exact,
        metric=metric,
        distances=D,
        null=null,
    )
