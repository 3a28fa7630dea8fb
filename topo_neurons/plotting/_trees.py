"""The single-linkage hierarchy of a barcode: :func:`linkage_matrix`, :func:`plot_dendrogram`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._common import (
    BarcodeLike,
    new_axes,
    unwrap,
)
from ._style import CROSS_LAYER_COLOR, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["linkage_matrix", "plot_dendrogram"]


def linkage_matrix(barcode: BarcodeLike) -> np.ndarray:
    """Single-linkage hierarchy of the points, in SciPy's linkage format, from the barcode.

    Merging the MST edges in order of death is Kruskal's algorithm, i.e. single-linkage
    clustering: row ``k`` merges the two clusters joined by ``edges[k]`` at height
    ``deaths[k]``. So the dendrogram carries exactly the information of the barcode (its merge
    heights *are* the deaths).

    Parameters
    ----------
    barcode : Barcode or object with ``.barcode``

    Returns
    -------
    numpy.ndarray of float64, shape (n − 1, 4)
        Rows ``[cluster_a, cluster_b, height, size]`` as from
        ``scipy.cluster.hierarchy.linkage(..., method="single")``: leaves are ``0 … n−1``, the
        cluster made in row ``k`` is ``n + k``, ``cluster_a < cluster_b``.

    Examples
    --------
    >>> import numpy as np, topo_neurons as tn
    >>> from topo_neurons.plotting import linkage_matrix
    >>> bc = tn.zero_persistence(np.array([[0, .2, .9], [.2, 0, .5], [.9, .5, 0]]))
    >>> linkage_matrix(bc)
    array([[0. , 1. , 0.2, 2. ],
           [2. , 3. , 0.5, 3. ]])
    """
    from scipy.cluster.hierarchy import DisjointSet

    bc, _ = unwrap(barcode)
    n = bc.n_points
    sets = DisjointSet(range(n))
    cluster = {i: i for i in range(n)}  # root of a set → its current cluster id
    Z = np.empty((len(bc), 4), dtype=np.float64)
    for k, ((i, j), d) in enumerate(zip(bc.edges.tolist(), bc.deaths.tolist())):
        a, b = sorted((cluster[sets[i]], cluster[sets[j]]))
        sets.merge(i, j)
        cluster[sets[i]] = n + k
        Z[k] = (a, b, d, sets.subset_size(i))
    return Z


def _labels_fitting(ax: Axes, fontsize: float) -> int:
    """How many rotated leaf labels of ``fontsize`` points fit the width of ``ax``."""
    fig = ax.figure
    width_pt = ax.get_position().width * fig.get_figwidth() * 72.0
    return int(width_pt // (fontsize + 1.0))


def _member_layers(
    Z: np.ndarray, n: int, point_layers: Sequence[str] | None, labels: Sequence[str] | None
):
    """``node → layer name`` of a cluster's members (``"fc1+fc2"`` when mixed), or ``None``.

    The layers are the carrier's ``point_layers``, else read from labels ``"layer[index]"``.
    """
    if point_layers is None and labels is not None and all("[" in x for x in labels):
        point_layers = [x.rsplit("[", 1)[0] for x in labels]
    if point_layers is None:
        return None
    names, code = np.unique(np.asarray(point_layers, dtype=str), return_inverse=True)
    first = {str(nm): int(np.flatnonzero(code == i)[0]) for i, nm in enumerate(names)}
    counts = np.zeros((2 * n - 1, len(names)), dtype=np.int64)
    counts[np.arange(n), code] = 1
    for k, (a, b) in enumerate(Z[:, :2].astype(np.int64)):
        counts[n + k] = counts[a] + counts[b]

    def layer_of(node: int) -> str:
        present = sorted((str(names[i]) for i in np.flatnonzero(counts[node])), key=first.get)
        return present[0] if len(present) == 1 else "+".join(present)

    return layer_of


def plot_dendrogram(
    barcode: BarcodeLike,
    *,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    threshold: float | None = None,
    color: str = OKABE_ITO[0],
    above_color: str = CROSS_LAYER_COLOR,
    max_labels: int | None = None,
    max_leaves: int | None = 60,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Single-linkage dendrogram of the neurons, built from the barcode's edges.

    Its merge heights are the deaths (see :func:`linkage_matrix`): the same information as the
    barcode, arranged as a tree of clusters. Leaves are named where the names fit the width
    (``fc2[11]``: a report's ``labels``, else the neuron's index). With hundreds of neurons the
    leaves cannot be told apart, so above ``max_leaves`` leaves, or above as many as can be named
    in the width, the lowest merges are collapsed (SciPy's ``truncate_mode="lastp"``): the
    figure keeps the clusters formed last, each collapsed leaf named by its members' count and
    layer (``12 × fc2``; ``5 × fc1+fc2`` when mixed; ``(12)`` when no layer is known) and drawn
    as a thick stem up to the height at which that cluster formed (coloured like a merge; the
    legend's swatches are drawn the same way), and every merge above them.

    Parameters
    ----------
    barcode : Barcode or object with ``.barcode``
        A report also supplies neuron names (``labels``) through its ``labels`` attribute.
    labels : sequence of str, shape (n,), optional
        Leaf names (e.g. ``"fc1[17]"``), drawn where they fit.
    ax : matplotlib.axes.Axes, optional
    threshold : float, optional
        Merges at height ``≤ threshold`` (redundant groups) are drawn in ``color``, the others in
        ``above_color``; a dotted line marks the threshold and a legend explains the colours.
        Default: all merges in ``color``, no legend.
    color, above_color : str
    max_labels : int, optional
        Most leaf labels drawn. Default: as many as fit the width of the Axes at 6 pt (one
        column of a paper: about 40). In the readable mode the tree is collapsed to that many
        leaves; with ``max_leaves=None`` the labels are hidden above it and the x label says so.
    max_leaves : int or None, default 60
        Readable mode: more leaves than this (or than can be named) are collapsed into
        clusters (see above). ``None`` draws every neuron.
    title : str, optional
    legend : bool, default True
        Explain the colours and the threshold line (when ``threshold`` is given).

    Returns
    -------
    matplotlib.axes.Axes
        The merges drawn as U-shaped segments (``LineCollection``) whose top is at the merge
        height: ``n − 1`` of them, or ``max_leaves − 1`` in the readable mode, where the
        collapsed leaves' stems are a ``LineCollection`` with ``gid="collapsed"``. The threshold
        line has ``gid="threshold"``.
    """
    from matplotlib.lines import Line2D
    from scipy.cluster.hierarchy import dendrogram

    bc, point_layers = unwrap(barcode)
    if labels is None:
        labels = getattr(barcode, "labels", None)
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != bc.n_points:
            raise ValueError(f"labels must name the {bc.n_points} points; got {len(labels)}")
    if max_leaves is not None and (isinstance(max_leaves, bool) or int(max_leaves) < 2):
        raise ValueError(f"max_leaves must be an int ≥ 2 or None; got {max_leaves!r}")
    ax = new_axes(ax)
    ax.set_ylabel("merge height (death)")
    if len(bc) == 0:
        return ax
    Z = linkage_matrix(bc)
    n = bc.n_points

    def link_color(node: int) -> str:
        if threshold is None or Z[node - n, 2] <= threshold:
            return color
        return above_color

    fontsize = 6.0
    room = _labels_fitting(ax, fontsize) if max_labels is None else int(max_labels)
    leaves = n
    if max_leaves is not None and n > int(max_leaves):
        leaves = int(max_leaves)
    if max_leaves is not None and leaves > room:
        # Collapse further so that every leaf can be named (at least 2 leaves).
        leaves = max(room, 2)
    truncated = leaves < n
    show = leaves <= room
    layer_of = _member_layers(Z, n, point_layers, labels) if truncated else None

    def leaf_label(node: int) -> str:
        if node < n:
            return labels[node] if labels is not None else str(node)
        size = int(Z[node - n, 3])
        if layer_of is None:
            return f"({size})"
        return f"{size} × {layer_of(node)}"

    kw: dict[str, Any] = {}
    if truncated:
        kw = {"truncate_mode": "lastp", "p": leaves}
    tree = dendrogram(
        Z,
        ax=ax,
        leaf_label_func=leaf_label,
        no_labels=not show,
        link_color_func=link_color,
        leaf_font_size=fontsize if show else None,
        leaf_rotation=90 if show else None,
        **kw,
    )
    stem_colors: list[str] = []
    if truncated:
        # Each collapsed leaf: a thick stem up to the height at which its cluster formed,
        # coloured like a merge (redundant groups stand out as in the full tree).
        from matplotlib.collections import LineCollection

        segs = []
        for k, leaf in enumerate(tree["leaves"]):
            if leaf >= n:
                h = float(Z[leaf - n, 2])
                segs.append([(5.0 + 10.0 * k, 0.0), (5.0 + 10.0 * k, h)])
                stem_colors.append(link_color(leaf))
        stems = LineCollection(segs, colors=stem_colors, linewidths=3.0, zorder=3)
        stems.set_gid("collapsed")
        ax.add_collection(stems)
        what = f"{n} neurons, lowest merges collapsed into {leaves} leaves"
        if show:
            how = "count × layer" if layer_of is not None else "(count)"
            what = f"{n} neurons in {leaves} leaves (collapsed: {how})"
    elif show:
        what = f"{n} neurons"
    else:
        what = f"{n} neurons (labels do not fit)"
    ax.set_xlabel(what)
    if threshold is not None:
        line = ax.axhline(threshold, ls=":", lw=0.8, color="black")
        line.set_gid("threshold")
        if legend:
            handles = [
                Line2D([], [], color=color, label=f"merge ≤ {threshold:g}: redundant group"),
                Line2D([], [], color=above_color, label=f"merge > {threshold:g}"),
                Line2D([], [], color="black", ls=":", lw=0.8, label=f"threshold {threshold:g}"),
            ]
            # The collapsed clusters' swatches drawn as they are: thick stems in their colours.
            for col, what in ((color, "≤"), (above_color, ">")):
                if col in stem_colors:
                    handles.append(
                        Line2D(
                            [],
                            [],
                            color=col,
                            lw=3.0,
                            label=f"collapsed cluster, {what} {threshold:g}",
                        )
                    )
            # Head room above the root merge for the legend: two columns where the Axes are
            # wide enough (about 45 labels of 6 pt), 12 % of the height per row of entries.
            cols = 2 if _labels_fitting(ax, 6.0) >= 45 else 1
            rows = -(-len(handles) // cols)
            room = 1.0 / (0.95 - 0.12 * rows)
            ax.set_ylim(0.0, max(float(Z[:, 2].max()), threshold) * room or 1.0)
            ax.legend(
                handles=handles, loc="upper right", frameon=False, fontsize="small", ncols=cols
            )
    if title:
        ax.set_title(title)
    return ax
