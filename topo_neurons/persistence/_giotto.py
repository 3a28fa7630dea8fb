"""giotto-tda's diagram layout: ``(n_points, 3)`` rows ``[birth, death, dimension]``.

giotto-tda's ``VietorisRipsPersistence`` (``gtda.homology``) post-processes each diagram in
``gtda/homology/_utils.py`` (``_postprocess_diagrams``): with ``reduced_homology=True`` (its
default) the one infinite bar of H0 is removed; with ``False`` it is kept, its death replaced by
``infinity_values`` (``inf`` by default); points with ``birth ≥ death`` are removed (zero-length
bars); and a collection is padded to one 3-D array, each diagram with rows
``[m, m, dim]`` (``m`` the smallest birth of that dimension over the collection, ``0`` for
H0) up to the longest diagram, at least one row. These functions follow it on plain arrays;
:class:`~topo_neurons.Barcode`'s ``to_giotto`` / ``from_giotto`` and
:class:`~topo_neurons.NeuronPersistence` use them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["giotto_deaths", "giotto_rows", "pad_diagrams"]


def _check_infinity(infinity_values: float | None) -> float:
    if infinity_values is None:
        return np.inf
    if isinstance(infinity_values, bool) or not isinstance(
        infinity_values, (int, float, np.floating, np.integer)
    ):
        raise TypeError(f"infinity_values must be a number or None; got {infinity_values!r}")
    if not infinity_values > 0:
        raise ValueError(f"infinity_values={infinity_values!r} must be > 0 (or None: inf)")
    return float(infinity_values)


def giotto_rows(
    deaths: np.ndarray, *, reduced: bool = True, infinity_values: float | None = None
) -> np.ndarray:
    """One barcode's H0 diagram as giotto-tda's ``VietorisRipsPersistence`` gives it.

    Parameters
    ----------
    deaths : numpy.ndarray, shape (n − 1,)
        Ascending deaths (the bars are born at 0).
    reduced : bool, default True
        giotto-tda's ``reduced_homology``: drop the infinite bar (``False``: a last row
        ``[0, infinity_values, 0]``).
    infinity_values : float, optional
        The death given to the infinite bar when ``reduced=False`` (default ``inf``).

    Returns
    -------
    numpy.ndarray of float64, shape (k, 3)
        Rows ``[0, d, 0]`` for each death ``d > 0`` in ascending order (zero-length bars are
        dropped, as giotto-tda drops points with ``birth ≥ death``), then the infinite bar's
        row if ``reduced=False``.
    """
    inf = _check_infinity(infinity_values)
    d = np.asarray(deaths, dtype=np.float64)
    d = d[d > 0]
    rows = np.zeros((d.size + (0 if reduced else 1), 3), dtype=np.float64)
    rows[: d.size, 1] = d
    if not reduced:
        rows[-1, 1] = inf
    return rows


def giotto_deaths(
    diagram: np.ndarray, n_points: int | None = None, infinity_values: float | None = None
) -> tuple[np.ndarray, int]:
    """The finite deaths and the number of points of a giotto-tda H0 diagram.

    Rows of other dimensions, padding rows and zero-length bars (``birth == death``) and the
    infinite bar (``death == inf``, or ``≥ infinity_values`` when given) are not finite bars.

    Parameters
    ----------
    diagram : array_like, shape (k, 3)
        ``[birth, death, dimension]`` rows of one diagram.
    n_points : int, optional
        The number of points (neurons). giotto-tda drops zero-length bars, so a diagram holds
        ``n − 1 − z`` finite bars when ``z`` bars were of length 0: given ``n_points``, they
        are restored as deaths 0. Default: the number of finite bars + 1.
    infinity_values : float, optional
        The death that stands for infinity in ``diagram`` (``reduced_homology=False`` with
        finite ``infinity_values``).

    Returns
    -------
    deaths : numpy.ndarray of float64, shape (n_points − 1,), ascending
    n_points : int

    Raises
    ------
    ValueError
        Not a ``(k, 3)`` array, non-finite births, H0 births other than 0 (not a barcode of a
        metric space's Vietoris–Rips filtration), a death below its birth, or ``n_points``
        smaller than the bars + 1.
    """
    X = np.asarray(diagram, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 3:
        raise ValueError(
            f"a giotto-tda diagram has shape (n_points, 3) with rows [birth, death, "
            f"dimension]; got shape {X.shape} (for a 3-D collection pass one diagram, X[i])"
        )
    inf = _check_infinity(infinity_values)
    h0 = X[X[:, 2] == 0]
    if not np.all(np.isfinite(h0[:, 0])) or np.any(np.isnan(h0[:, 1])):
        raise ValueError("the diagram's H0 rows must have finite births and non-NaN deaths")
    if np.any(h0[:, 1] < h0[:, 0]):
        raise ValueError("the diagram has H0 rows whose death is below their birth")
    bars = h0[h0[:, 0] < h0[:, 1]]  # padding and zero-length rows have birth == death
    if np.any(bars[:, 0] != 0):
        raise ValueError(
            "H0 bars of a Vietoris–Rips barcode are born at 0; got births "
            f"{np.unique(bars[bars[:, 0] != 0, 0])[:5].tolist()}"
        )
    d = np.sort(bars[:, 1][bars[:, 1] < inf])
    if n_points is None:
        n = d.size + 1
    else:
        if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)):
            raise TypeError(f"n_points must be an int or None; got {n_points!r}")
        n = int(n_points)
        if n < d.size + 1:
            raise ValueError(
                f"n_points={n} is too small: the diagram holds {d.size} finite bars "
                f"(n_points ≥ {d.size + 1})"
            )
        d = np.concatenate([np.zeros(n - 1 - d.size), d])
    return d, n


def pad_diagrams(diagrams: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``(k_i, 3)`` H0 diagrams into giotto-tda's 3-D array.

    Each diagram is padded at its end with rows ``[m, m, 0]`` (``m`` the smallest birth over
    the collection, 0 for barcodes) up to the longest one; an array holds at least one row.

    Returns
    -------
    numpy.ndarray of float64, shape (len(diagrams), max(1, max k_i), 3)
    """
    if not len(diagrams):
        raise ValueError("no diagrams to pad")
    k = max([1] + [len(dg) for dg in diagrams])
    births = [np.asarray(dg)[:, 0] for dg in diagrams if len(dg)]
    m = float(min(b.min() for b in births)) if births else 0.0
    out = np.zeros((len(diagrams), k, 3), dtype=np.float64)
    out[:, :, :2] = m
    for i, dg in enumerate(diagrams):
        out[i, : len(dg)] = dg
    return out
