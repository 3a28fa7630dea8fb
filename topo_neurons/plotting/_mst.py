"""The minimum spanning tree drawn in the plane (tree-distance MDS or spectral layout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._options import check_choice
from ..persistence import Barcode
from ._common import (
    BarcodeLike,
    begin,
    layer_colors,
    layer_order,
)
from ._style import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_mst"]


def _tree_layout(bc: Barcode, layout: str, seed: int) -> np.ndarray:
    """2-d positions of the points from the distances along the MST."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    n = bc.n_points
    if n == 1:
        return np.zeros((1, 2))
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    # Edge length: a constant plus the relative death, so that redundant neighbours sit close
    # but stay distinguishable (and zero-weight sparse entries cannot vanish). The constant
    # (:data:`_MIN_EDGE`) keeps nodes of near-zero deaths apart.
    top = float(deaths.max())
    w = _MIN_EDGE + (deaths / top if top > 0 else deaths)
    e = bc.edges
    adj = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n))
    if layout == "spectral":
        from sklearn.manifold import SpectralEmbedding

        if n <= 3:
            layout = "mds"
        else:
            aff = adj.tocsr().copy()
            aff.data = np.exp(-aff.data / max(float(np.median(w)), 1e-6))
            emb = SpectralEmbedding(n_components=2, affinity="precomputed", random_state=seed)
            return emb.fit_transform(aff.toarray())
    dist = shortest_path(adj.tocsr(), directed=False)
    return _mds_layout(dist)


#: Length of an edge of death 0 in the layout, relative to the longest edge's ``1 + _MIN_EDGE``.
_MIN_EDGE = 0.25
#: Largest tree refined by SMACOF (each iteration is O(n²) time and memory).
_SMACOF_MAX_POINTS = 1000
_SMACOF_ITERATIONS = 150


def _kamada_kawai(dist: np.ndarray, pos: np.ndarray, iterations: int = 150) -> np.ndarray:
    """Weighted SMACOF with Kamada–Kawai weights ``1 / dist²`` from ``pos`` (n, 2).

    Stress majorisation (Gansner, Koren & North 2004) of ``Σ w_ij (‖x_i − x_j‖ − d_ij)²``:
    the weights make near pairs count as much as far ones, so neighbours of the tree keep their
    distance instead of piling up in the centre (the unweighted stress favours long distances).
    Each step is the Guttman transform ``X ← V⁺ B(X) X``; deterministic.
    """
    W = np.zeros_like(dist)
    near = dist > 0
    W[near] = dist[near] ** -2.0
    V = -W
    np.fill_diagonal(V, W.sum(axis=1))
    V_pinv = np.linalg.pinv(V)
    X = pos.copy()
    for _ in range(iterations):
        D = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            B = np.where(D > 0, -W * dist / D, 0.0)
        np.fill_diagonal(B, 0.0)
        np.fill_diagonal(B, -B.sum(axis=1))
        X = V_pinv @ (B @ X)
    return X


def _mds_layout(dist: np.ndarray) -> np.ndarray:
    """Metric MDS of the tree distances ``dist`` (n, n): classical start, SMACOF refinement.

    scikit-learn's ``ClassicalMDS`` (Torgerson scaling) gives the start; up to
    :data:`_SMACOF_MAX_POINTS` points ``sklearn.manifold.smacof`` refines it by stress
    majorisation from that start (deterministic: no random initialisation), which spreads out
    the side branches classical MDS squeezes onto a tree's main arms, then
    :func:`_kamada_kawai` weights near pairs up, so that nodes no longer overlap in the centre
    (on the docs' MLP, 31 pairs of nodes closer than 2 % of the layout's width become 0).
    """
    from sklearn.manifold import ClassicalMDS, smacof

    n = dist.shape[0]
    if n == 2:  # one distance: two points on the x axis (eigenpairs of a 2 × 2 are degenerate)
        return np.array([[0.0, 0.0], [float(dist[0, 1]), 0.0]])
    # A tree metric on collinear points has a zero (rounded: tiny negative) second eigenvalue,
    # whose square root ClassicalMDS returns as NaN: that axis is 0.
    with np.errstate(invalid="ignore"):
        pos = ClassicalMDS(n_components=2, metric="precomputed").fit_transform(dist)
    pos = np.nan_to_num(pos, nan=0.0)
    if n <= _SMACOF_MAX_POINTS:
        pos = smacof(
            dist,
            metric=True,
            n_components=2,
            init=pos,
            n_init=1,
            max_iter=_SMACOF_ITERATIONS,
            normalized_stress=False,
        )[0]
        pos = _kamada_kawai(dist, pos)
    # Deterministic orientation: the largest-magnitude coordinate of each axis is positive.
    signs = np.sign(pos[np.argmax(np.abs(pos), axis=0), [0, 1]])
    signs[signs == 0] = 1.0
    return pos * signs


def plot_mst(
    barcode: BarcodeLike,
    *,
    layers: Sequence[str] | np.ndarray | None = None,
    ax: Axes | None = None,
    layout: str = "mds",
    seed: int = 0,
    node_size: float | None = None,
    colorbar: bool = True,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Draw the minimum spanning tree: neurons as nodes, the ``n − 1`` MST edges as segments.

    Node positions come from the distances along the tree (path length, each edge of length
    ``0.25 + death / max(death)``): ``layout="mds"`` uses scikit-learn's classical
    multidimensional scaling (``ClassicalMDS``) refined by metric stress majorisation
    (``sklearn.manifold.smacof``, then with Kamada–Kawai weights ``1 / distance²`` so that
    near nodes do not overlap; up to 1000 neurons; deterministic), ``layout="spectral"``
    scikit-learn's ``SpectralEmbedding`` of the tree. Edges are coloured by death (short =
    redundant, dark) and drawn above the nodes, wider the shorter their death (0.7 to 2 points);
    nodes, coloured by layer, are small and semi-transparent (alpha 0.8).

    Parameters
    ----------
    barcode : Barcode or object with ``.barcode``
    layers : sequence of str, shape (n,), optional
        Layer of each neuron, for node colours and a legend.
    ax : matplotlib.axes.Axes, optional
    layout : {"mds", "spectral"}, default "mds"
    seed : int, default 0
        Random state of the spectral layout.
    node_size : float, optional
        Marker area in points²; default shrinks with ``n``.
    colorbar : bool, default True
        Add a colour bar for the edge deaths.
    title : str, optional
    legend : bool, default True

    Returns
    -------
    matplotlib.axes.Axes
        A ``LineCollection`` with ``n − 1`` segments (``gid="mst-edges"``, above the nodes) and
        one ``PathCollection`` per layer (``n`` nodes in all).
    """
    from matplotlib.collections import LineCollection

    layouts = ("mds", "spectral")
    check_choice("layout", layout, layouts)
    bc, point_layers, ax = begin(barcode, layers, ax)
    pos = _tree_layout(bc, layout, seed)
    n = bc.n_points
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    if len(bc):
        segs = np.stack([pos[bc.edges[:, 0]], pos[bc.edges[:, 1]]], axis=1)
        # Above the nodes, and the wider the shorter the death: the redundant (dark) edges,
        # the point of the figure, stay visible against the nodes.
        rel = deaths / max(float(deaths.max()), 1e-12)
        widths = 0.7 + 1.3 * (1.0 - rel)
        lc = LineCollection(segs, cmap="viridis", linewidths=widths, zorder=3)
        lc.set_array(deaths)
        lc.set_clim(0.0, max(float(deaths.max()), 1e-12))
        lc.set_gid("mst-edges")
        ax.add_collection(lc)
        if colorbar:
            cb = ax.figure.colorbar(lc, ax=ax, shrink=0.8, pad=0.02)
            cb.set_label("edge death")
    size = node_size if node_size is not None else float(np.clip(160.0 / np.sqrt(n), 3.0, 24.0))
    kw = {"s": size, "edgecolors": "none", "alpha": 0.8, "zorder": 2}
    if point_layers is None:
        ax.scatter(pos[:, 0], pos[:, 1], color=OKABE_ITO[0], **kw)
    else:
        names = layer_order(point_layers)
        colors = layer_colors(names)
        for name in names:
            sel = point_layers == name
            ax.scatter(pos[sel, 0], pos[sel, 1], color=colors[name], label=name, **kw)
        if legend:
            ax.legend(frameon=False, fontsize="small", loc="best")
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return ax
