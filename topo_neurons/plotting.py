"""Figures of 0-dimensional persistence: barcodes, diagrams, dendrograms, trees, evolution.

Every function takes ``ax=None`` (a new figure is made when omitted), draws on that Axes only,
returns it, never calls ``show()`` and never changes global style; :func:`paper_style` is the one
place that sets ``rcParams``, inside a context. matplotlib is imported inside the functions, so
``import topo_neurons`` never loads ``matplotlib.pyplot``.

Anything that carries a barcode can be plotted: a :class:`~topo_neurons.Barcode`, or an object
with a ``barcode`` attribute and optionally ``point_layers`` (a
:class:`~topo_neurons.RedundancyReport` or one of its layer entries), whose layers are then used
for colours by default.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .persistence import Barcode

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "COLUMN_WIDTHS",
    "OKABE_ITO",
    "linkage_matrix",
    "paper_style",
    "plot_barcode",
    "plot_barcode_evolution",
    "plot_death_distribution",
    "plot_dendrogram",
    "plot_diagram",
    "plot_mst",
    "save_figure",
]

#: Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008), in the order used for layers/series.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#56B4E9",  # sky blue
    "#CC79A7",  # reddish purple
    "#F0E442",  # yellow
    "#000000",  # black
)
#: Colour of bars/edges that join neurons of two different layers.
CROSS_LAYER_COLOR = "#7F7F7F"
#: Figure widths in inches: one column and two columns of a typical two-column paper.
COLUMN_WIDTHS: dict[int, float] = {1: 3.5, 2: 7.16}


# ----------------------------------------------------------------------------- helpers
def _new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _unwrap(obj: Any, what: str = "barcode") -> tuple[Barcode, Sequence[str] | None]:
    """Return ``(barcode, point_layers or None)`` from a Barcode or a report-like object."""
    if isinstance(obj, Barcode):
        return obj, None
    bc = getattr(obj, "barcode", None)
    if isinstance(bc, Barcode):
        return bc, getattr(obj, "point_layers", None)
    raise TypeError(
        f"{what} must be a topo_neurons.Barcode or an object with a .barcode attribute "
        f"(RedundancyReport, LayerRedundancy); got {type(obj).__name__}"
    )


def _check_layers(layers: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray | None:
    if layers is None:
        return None
    arr = np.asarray(layers, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"layers must give one layer name per point: expected shape ({n},), got {arr.shape}"
        )
    return arr.astype(str)


def _layer_order(layers: np.ndarray) -> list[str]:
    """Layer names in order of first appearance."""
    _, first = np.unique(layers, return_index=True)
    return [str(layers[i]) for i in sorted(first)]


def _layer_colors(names: Sequence[str]) -> dict[str, str]:
    return {name: OKABE_ITO[k % len(OKABE_ITO)] for k, name in enumerate(names)}


def _edge_groups(bc: Barcode, layers: np.ndarray) -> np.ndarray:
    """Per finite bar: the layer of both endpoints, or ``""`` when they differ."""
    if len(bc) == 0:
        return np.empty(0, dtype=object)
    a = layers[bc.edges[:, 0]]
    b = layers[bc.edges[:, 1]]
    return np.where(a == b, a, "")


# ----------------------------------------------------------------------------- barcode
def plot_barcode(
    barcode: Any,
    *,
    layers: Sequence[str] | np.ndarray | None = None,
    ax: Axes | None = None,
    color: str | None = None,
    infinite: bool = True,
    xlabel: str = "death (correlation dissimilarity)",
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Draw a 0-dimensional barcode: one horizontal bar ``[0, death)`` per finite bar.

    Bars are sorted by death (shortest at the bottom); the infinite bar ``[0, ∞)`` is drawn on
    top, reaching the right edge, with an arrow head and the label ``∞``.

    Parameters
    ----------
    barcode : Barcode or object with ``.barcode``
        The ``n − 1`` finite bars to draw. A :class:`~topo_neurons.RedundancyReport` (or one
        of its layer entries) also supplies ``layers``.
    layers : sequence of str, shape (n,), optional
        Layer name of each point (neuron). Each bar is coloured by the layer of the two neurons
        its MST edge joins, or grey ("between layers") when they belong to different layers;
        a legend names the colours.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    color : str, optional
        Colour of all bars when ``layers`` is not given.
    infinite : bool, default True
        Draw the infinite bar.
    xlabel, title : str
        Axis label and optional title.
    legend : bool, default True
        Add a legend when bars are coloured by layer.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; its ``containers`` hold one ``BarContainer`` per colour group (``n − 1``
        rectangles in all), the infinite bar is a line with ``gid="infinite-bar"`` (x in axes
        coordinates, to the right edge).

    Examples
    --------
    >>> import numpy as np, topo_neurons as tn
    >>> bc = tn.zero_persistence(np.array([[0, .2, .9], [.2, 0, .5], [.9, .5, 0]]))
    >>> ax = tn.plot_barcode(bc)
    >>> sum(len(c) for c in ax.containers)
    2
    """
    bc, default_layers = _unwrap(barcode)
    point_layers = _check_layers(layers if layers is not None else default_layers, bc.n_points)
    ax = _new_axes(ax)
    k = len(bc)
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    order = np.argsort(deaths, kind="stable")
    y = np.empty(k, dtype=np.float64)
    y[order] = np.arange(k)
    height = 0.8 if k <= 200 else 1.0
    if point_layers is None:
        ax.barh(
            y, deaths, left=0.0, height=height, color=color or OKABE_ITO[0], label="finite bars"
        )
    else:
        names = _layer_order(point_layers)
        colors = _layer_colors(names)
        groups = _edge_groups(bc, point_layers)
        for name in [*names, ""]:
            sel = groups == name
            if not np.any(sel):
                continue
            ax.barh(
                y[sel],
                deaths[sel],
                left=0.0,
                height=height,
                color=colors.get(name, CROSS_LAYER_COLOR),
                label=name if name else "between layers",
            )
    top = float(deaths.max()) if k else 0.0
    xmax = top * 1.12 if top > 0 else 1.0
    ax.set_xlim(0.0, xmax)
    if infinite:
        # x in axes coordinates: the infinite bar always reaches the right edge (also when the
        # x axis is shared with other panels); y in data coordinates.
        trans = ax.get_yaxis_transform()
        yi = float(k)
        (line,) = ax.plot(
            [0.0, 0.97], [yi, yi], color="black", lw=1.5, solid_capstyle="butt", transform=trans
        )
        line.set_gid("infinite-bar")
        ax.plot([0.97], [yi], marker=">", color="black", ms=4, clip_on=False, transform=trans)
        ax.annotate(
            "∞",
            (0.97, yi),
            xycoords=trans,
            xytext=(-2, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
        )
    # Room above the infinite bar for its "∞" label, inside the axes (clear of any title).
    ax.set_ylim(-1.0, k + (max(1.8, 0.08 * (k + 1)) if infinite else 0.0))
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{k} finite bars, sorted by death")
    if title:
        ax.set_title(title)
    if point_layers is not None and legend:
        ax.legend(loc="lower right", frameon=False, fontsize="small")
    return ax


def _strip_offsets(deaths: np.ndarray, half_width: float = 0.45) -> np.ndarray:
    """Horizontal offsets that spread points of similar deaths side by side (a sina plot).

    The deaths are binned; the points of a bin get evenly spaced offsets (in a fixed shuffled
    order) over a width proportional to the bin's count, the fullest bin spanning
    ``[-half_width, half_width]``. Deterministic.
    """
    k = deaths.size
    x = np.zeros(k, dtype=np.float64)
    if k == 0:
        return x
    lo, hi = float(deaths.min()), float(deaths.max())
    nbins = int(np.clip(k // 4, 1, 40))
    if hi <= lo:
        bins = np.zeros(k, dtype=np.int64)
    else:
        bins = np.minimum(((deaths - lo) / (hi - lo) * nbins).astype(np.int64), nbins - 1)
    counts = np.bincount(bins, minlength=nbins)
    top = max(int(counts.max()), 2)
    gen = np.random.default_rng(0)
    for b in np.flatnonzero(counts > 1):
        members = np.flatnonzero(bins == b)
        width = half_width * (counts[b] - 1) / (top - 1)
        x[members] = gen.permutation(np.linspace(-width, width, members.size))
    return x


def plot_diagram(
    barcode: Any,
    *,
    layers: Sequence[str] | np.ndarray | None = None,
    ax: Axes | None = None,
    color: str | None = None,
    infinite: bool = True,
    title: str | None = None,
    legend: bool = True,
    layout: str = "strip",
) -> Axes:
    """Draw the 0-dimensional persistence diagram: one point per class, at its death.

    In dimension 0 every class is born at 0, so on a square birth–death diagram all the finite
    points sit on its left edge and the triangle above the diagonal stays empty.
    ``layout="strip"`` (default) therefore gives the panel to the deaths: the y axis is the
    death, and points of similar deaths are spread side by side around ``birth = 0`` (a sina
    plot: the width at a height shows how many classes die there; the horizontal position has
    no other meaning). ``layout="square"`` draws the classic diagram (points ``(0, death)``,
    the diagonal dashed), e.g. to set beside diagrams of higher dimensions.

    Parameters
    ----------
    barcode : Barcode or object with ``.barcode``
        The diagram's ``n − 1`` finite points.
    layers : sequence of str, shape (n,), optional
        Layer of each neuron; points are coloured like :func:`plot_barcode` colours bars.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when omitted.
    color : str, optional
        Colour of all points when ``layers`` is not given.
    infinite : bool, default True
        Draw the infinite class (a triangle on a dotted line, labelled ``∞``, above every death).
    title : str, optional
    legend : bool, default True
        Name the layer colours and the infinite class.
    layout : {"strip", "square"}, default "strip"

    Returns
    -------
    matplotlib.axes.Axes
        One ``PathCollection`` per colour group (``n − 1`` finite points in all; y = death,
        x = birth 0 plus the strip offset, ``|x| ≤ 0.45``), the infinite point with
        ``gid="infinite-point"``. ``"square"`` also draws the diagonal (the first line).

    Examples
    --------
    >>> import numpy as np, topo_neurons as tn
    >>> bc = tn.zero_persistence(np.array([[0, .2, .9], [.2, 0, .5], [.9, .5, 0]]))
    >>> ax = tn.plot_diagram(bc)
    >>> finite = [c for c in ax.collections if c.get_gid() is None]
    >>> sorted(float(y) for c in finite for y in c.get_offsets()[:, 1])
    [0.2, 0.5]
    """
    layouts = ("strip", "square")
    if layout not in layouts:
        raise ValueError(f"layout={layout!r} is not a valid layout; valid layouts are {layouts}")
    bc, default_layers = _unwrap(barcode)
    point_layers = _check_layers(layers if layers is not None else default_layers, bc.n_points)
    ax = _new_axes(ax)
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    top = float(deaths.max()) if deaths.size else 0.0
    lim = top * 1.15 if top > 0 else 1.0
    strip = layout == "strip"
    xs = _strip_offsets(deaths) if strip else np.zeros_like(deaths)
    if not strip:
        ax.plot([0.0, lim], [0.0, lim], ls="--", lw=0.8, color=CROSS_LAYER_COLOR, zorder=0)
    size = float(np.clip(300.0 / np.sqrt(max(deaths.size, 1)), 4.0, 16.0))
    kw = {"s": size, "alpha": 0.75, "edgecolors": "none", "clip_on": False}
    if point_layers is None:
        ax.scatter(xs, deaths, color=color or OKABE_ITO[0], label="finite classes", **kw)
    else:
        names = _layer_order(point_layers)
        colors = _layer_colors(names)
        groups = _edge_groups(bc, point_layers)
        for name in [*names, ""]:
            sel = groups == name
            if np.any(sel):
                ax.scatter(
                    xs[sel],
                    deaths[sel],
                    color=colors.get(name, CROSS_LAYER_COLOR),
                    label=name if name else "between layers",
                    **kw,
                )
    if infinite:
        yi = top * 1.08 if top > 0 else 0.95
        ax.axhline(yi, ls=":", lw=0.8, color="black", zorder=0)
        pt = ax.scatter(
            [0.0], [yi], marker="^", color="black", s=24, clip_on=False, zorder=3, label="∞"
        )
        pt.set_gid("infinite-point")
        ax.annotate("∞", (0.0, yi), xytext=(6, 1), textcoords="offset points", va="bottom")
    if strip:
        ax.set_xlim(-0.5, 0.5)
        ax.set_xticks([0.0], ["0"])
        ax.set_xlabel("birth (all 0 in dimension 0; spread by density)")
        ax.set_ylim(0.0, lim)
    else:
        ax.set_xlim(-0.04 * lim, lim)
        ax.set_ylim(-0.02 * lim, lim)
        ax.set_xlabel("birth")
        ax.set_aspect("equal", adjustable="box")
    ax.set_ylabel("death (correlation dissimilarity)")
    if title:
        ax.set_title(title)
    if legend and (point_layers is not None or infinite):
        loc = "lower right" if not strip else "best"
        ax.legend(loc=loc, frameon=False, fontsize="small")
    return ax


def plot_death_distribution(
    barcodes: Mapping[str, Any] | Sequence[Any],
    labels: Sequence[str] | None = None,
    *,
    style: str = "ecdf",
    bins: int | Sequence[float] = 30,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
    xlabel: str = "death (correlation dissimilarity)",
    title: str | None = None,
) -> Axes:
    """Overlay the death distributions of several barcodes (e.g. no regulariser vs T1 vs T2).

    Parameters
    ----------
    barcodes : mapping label → barcode, or sequence of barcodes
        Barcodes (or objects with ``.barcode``) to compare. A mapping gives the labels.
    labels : sequence of str, optional
        Legend labels for a sequence (default ``"barcode 0"``, …); not allowed with a mapping.
    style : {"ecdf", "hist"}, default "ecdf"
        ``"ecdf"``: empirical cumulative distribution, a step line per barcode
        (``y = k / (n − 1)`` at the ``k``-th smallest death). ``"hist"``: outlined density
        histograms on shared bins.
    bins : int or sequence of float, default 30
        Histogram bins (``style="hist"`` only), shared by all barcodes.
    ax : matplotlib.axes.Axes, optional
    colors : sequence of str, optional
        One colour per barcode (default: the Okabe–Ito palette).
    xlabel, title : str

    Returns
    -------
    matplotlib.axes.Axes
        ``"ecdf"``: one ``Line2D`` per barcode, labelled; ``"hist"``: one outline patch each.
    """
    styles = ("ecdf", "hist")
    if style not in styles:
        raise ValueError(f"style={style!r} is not a valid style; valid styles are {styles}")
    if isinstance(barcodes, Mapping):
        if labels is not None:
            raise ValueError("labels are taken from the mapping's keys; do not pass both")
        names = [str(k) for k in barcodes]
        items = list(barcodes.values())
    else:
        items = list(barcodes)
        if labels is None:
            names = [f"barcode {i}" for i in range(len(items))]
        else:
            names = [str(x) for x in labels]
        if len(names) != len(items):
            raise ValueError(f"got {len(items)} barcodes but {len(names)} labels")
    if not items:
        raise ValueError("plot_death_distribution needs at least one barcode")
    bcs = [_unwrap(b, f"barcode {name!r}")[0] for b, name in zip(items, names)]
    palette = list(colors) if colors is not None else list(OKABE_ITO)
    if len(palette) < len(bcs):
        raise ValueError(f"got {len(palette)} colours for {len(bcs)} barcodes")
    ax = _new_axes(ax)
    all_deaths = [np.asarray(bc.deaths, dtype=np.float64) for bc in bcs]
    if style == "hist":
        pooled = np.concatenate(all_deaths) if any(d.size for d in all_deaths) else np.zeros(1)
        edges = np.histogram_bin_edges(pooled, bins=bins)
    for deaths, name, col in zip(all_deaths, names, palette):
        if style == "ecdf":
            xs = np.sort(deaths)
            ys = np.arange(1, xs.size + 1) / max(xs.size, 1)
            ax.step(np.r_[0.0, xs], np.r_[0.0, ys], where="post", color=col, label=name, lw=1.4)
        else:
            ax.hist(
                deaths, bins=edges, histtype="step", density=True, color=col, label=name, lw=1.4
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of bars with death ≤ x" if style == "ecdf" else "density")
    if style == "ecdf":
        ax.set_ylim(0.0, 1.02)
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- dendrogram
def linkage_matrix(barcode: Any) -> np.ndarray:
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
    bc, _ = _unwrap(barcode)
    n = bc.n_points
    parent = np.arange(n)
    cluster = np.arange(n)  # root → current cluster id
    size = np.ones(n, dtype=np.int64)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    Z = np.empty((len(bc), 4), dtype=np.float64)
    for k, ((i, j), d) in enumerate(zip(bc.edges, bc.deaths)):
        ri, rj = find(int(i)), find(int(j))
        a, b = sorted((int(cluster[ri]), int(cluster[rj])))
        merged = size[ri] + size[rj]
        Z[k] = (a, b, float(d), merged)
        parent[rj] = ri
        size[ri] = merged
        cluster[ri] = n + k
    return Z


def _labels_fit(ax: Axes, count: int, fontsize: float) -> bool:
    """Whether ``count`` rotated leaf labels of ``fontsize`` points fit the width of ``ax``."""
    fig = ax.figure
    width_pt = ax.get_position().width * fig.get_figwidth() * 72.0
    return count * (fontsize + 1.0) <= width_pt


def plot_dendrogram(
    barcode: Any,
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
    barcode, arranged as a tree of clusters. With hundreds of neurons the leaves cannot be told
    apart, so above ``max_leaves`` leaves the lowest merges are collapsed (SciPy's
    ``truncate_mode="lastp"``): the figure keeps the ``max_leaves`` clusters formed last, each
    leaf labelled ``(k)`` with the number of neurons it holds (where labels fit) and drawn as a
    thick stem up to the height at which that cluster formed (coloured like a merge), and every
    merge above them.

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
        column of a paper: about 40); above, the labels are hidden and the x label says so.
    max_leaves : int or None, default 60
        Readable mode: more leaves than this are collapsed into ``max_leaves`` clusters (see
        above). ``None`` draws every neuron.
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

    bc, _ = _unwrap(barcode)
    if labels is None:
        labels = getattr(barcode, "labels", None)
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != bc.n_points:
            raise ValueError(f"labels must name the {bc.n_points} points; got {len(labels)}")
    if max_leaves is not None and (isinstance(max_leaves, bool) or int(max_leaves) < 2):
        raise ValueError(f"max_leaves must be an int ≥ 2 or None; got {max_leaves!r}")
    ax = _new_axes(ax)
    ax.set_ylabel("merge height (death)")
    if len(bc) == 0:
        return ax
    Z = linkage_matrix(bc)
    n = bc.n_points

    def link_color(node: int) -> str:
        if threshold is None or Z[node - n, 2] <= threshold:
            return color
        return above_color

    truncated = max_leaves is not None and n > int(max_leaves)
    leaves = int(max_leaves) if truncated else n
    fontsize = 6.0
    fits = _labels_fit(ax, leaves, fontsize) if max_labels is None else leaves <= max_labels
    show = fits and (labels is not None or truncated)
    kw: dict[str, Any] = {}
    if truncated:
        kw = {"truncate_mode": "lastp", "p": leaves}
    tree = dendrogram(
        Z,
        ax=ax,
        labels=labels if labels is not None else None,
        no_labels=not show,
        link_color_func=link_color,
        leaf_font_size=fontsize if show else None,
        leaf_rotation=90 if show else None,
        **kw,
    )
    if truncated:
        # Each collapsed leaf: a thick stem up to the height at which its cluster formed,
        # coloured like a merge (redundant groups stand out as in the full tree).
        from matplotlib.collections import LineCollection

        segs, cols = [], []
        for k, leaf in enumerate(tree["leaves"]):
            if leaf >= n:
                h = float(Z[leaf - n, 2])
                segs.append([(5.0 + 10.0 * k, 0.0), (5.0 + 10.0 * k, h)])
                cols.append(link_color(leaf))
        stems = LineCollection(segs, colors=cols, linewidths=3.0, zorder=3)
        stems.set_gid("collapsed")
        ax.add_collection(stems)
        what = f"{n} neurons, lowest merges collapsed into {leaves} leaves"
    elif show or labels is None:
        what = f"{n} neurons"
    else:
        what = f"{n} neurons (labels do not fit)"
    ax.set_xlabel(what)
    if threshold is not None:
        line = ax.axhline(threshold, ls=":", lw=0.8, color="black")
        line.set_gid("threshold")
        if legend:
            # Head room above the root merge for the legend.
            ax.set_ylim(0.0, max(float(Z[:, 2].max()), threshold) * 1.4 or 1.0)
            handles = [
                Line2D([], [], color=color, label=f"merge ≤ {threshold:g}: redundant group"),
                Line2D([], [], color=above_color, label=f"merge > {threshold:g}"),
                Line2D([], [], color="black", ls=":", lw=0.8, label=f"threshold {threshold:g}"),
            ]
            if truncated:
                handles.append(
                    Line2D([], [], color="black", lw=3.0, label="collapsed cluster (its merge)")
                )
            ax.legend(handles=handles, loc="upper right", frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- MST
def _tree_layout(bc: Barcode, layout: str, seed: int) -> np.ndarray:
    """2-d positions of the points from the distances along the MST."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    n = bc.n_points
    if n == 1:
        return np.zeros((1, 2))
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    # Edge length: a constant plus the relative death, so that redundant neighbours sit close
    # but stay distinguishable (and zero-weight sparse entries cannot vanish).
    top = float(deaths.max())
    w = 0.25 + (deaths / top if top > 0 else deaths)
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
    # Classical (Torgerson) multidimensional scaling of the tree distances.
    from scipy.linalg import eigh

    d2 = dist**2
    J = d2 - d2.mean(axis=0, keepdims=True) - d2.mean(axis=1, keepdims=True) + d2.mean()
    B = -0.5 * J
    k = min(2, n)
    vals, vecs = eigh(B, subset_by_index=[n - k, n - 1])
    pos = vecs[:, ::-1] * np.sqrt(np.clip(vals[::-1], 0.0, None))
    if pos.shape[1] < 2:
        pos = np.c_[pos, np.zeros(n)]
    # Classical MDS squeezes the side branches of a tree onto its main arms: refine by stress
    # majorisation (SMACOF, the Guttman transform) from that start, which spreads them out.
    if 3 <= n <= _SMACOF_MAX_POINTS:
        pos = _smacof(dist, pos, _SMACOF_ITERATIONS)
    # Deterministic orientation: the largest-magnitude coordinate of each axis is positive.
    signs = np.sign(pos[np.argmax(np.abs(pos), axis=0), [0, 1]])
    signs[signs == 0] = 1.0
    return pos * signs


#: Largest tree refined by SMACOF (each iteration is O(n²) time and memory).
_SMACOF_MAX_POINTS = 1000
_SMACOF_ITERATIONS = 150


def _smacof(dist: np.ndarray, X: np.ndarray, iterations: int) -> np.ndarray:
    """Metric stress majorisation (unit weights) of ``dist`` from the start ``X`` (n, 2)."""
    n = dist.shape[0]
    X = X.copy()
    for _ in range(iterations):
        sq = np.sum(X * X, axis=1)
        d = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            B = np.where(d > 1e-12, -dist / d, 0.0)
        np.fill_diagonal(B, 0.0)
        B[np.diag_indices(n)] = -B.sum(axis=1)
        X_new = B @ X / n
        if np.max(np.abs(X_new - X)) < 1e-7 * max(float(np.max(np.abs(X))), 1e-12):
            return X_new
        X = X_new
    return X


def plot_mst(
    barcode: Any,
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
    ``0.25 + death / max(death)``): ``layout="mds"`` uses classical multidimensional scaling
    (an eigendecomposition) refined by metric stress majorisation (SMACOF, up to 1000 neurons;
    deterministic), ``layout="spectral"`` scikit-learn's ``SpectralEmbedding`` of the tree.
    Edges are coloured by death (short = redundant, dark), nodes by layer.

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
        A ``LineCollection`` with ``n − 1`` segments (``gid="mst-edges"``) and one
        ``PathCollection`` per layer (``n`` nodes in all).
    """
    from matplotlib.collections import LineCollection

    layouts = ("mds", "spectral")
    if layout not in layouts:
        raise ValueError(f"layout={layout!r} is not a valid layout; valid layouts are {layouts}")
    bc, default_layers = _unwrap(barcode)
    point_layers = _check_layers(layers if layers is not None else default_layers, bc.n_points)
    ax = _new_axes(ax)
    pos = _tree_layout(bc, layout, seed)
    n = bc.n_points
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    if len(bc):
        segs = np.stack([pos[bc.edges[:, 0]], pos[bc.edges[:, 1]]], axis=1)
        lc = LineCollection(segs, cmap="viridis", linewidths=1.2, zorder=1)
        lc.set_array(deaths)
        lc.set_clim(0.0, max(float(deaths.max()), 1e-12))
        lc.set_gid("mst-edges")
        ax.add_collection(lc)
        if colorbar:
            cb = ax.figure.colorbar(lc, ax=ax, shrink=0.8, pad=0.02)
            cb.set_label("edge death")
    size = node_size if node_size is not None else float(np.clip(200.0 / np.sqrt(n), 3.0, 30.0))
    kw = {"s": size, "edgecolors": "white", "linewidths": 0.3, "zorder": 2}
    if point_layers is None:
        ax.scatter(pos[:, 0], pos[:, 1], color=OKABE_ITO[0], **kw)
    else:
        names = _layer_order(point_layers)
        colors = _layer_colors(names)
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


# ----------------------------------------------------------------------------- evolution
def plot_barcode_evolution(
    history: Any,
    layer: str | None = None,
    *,
    quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
    ax: Axes | None = None,
    color: str = OKABE_ITO[0],
    xlabel: str = "training step",
    title: str | None = None,
) -> Axes:
    """Death quantiles of one layer's barcode over training steps.

    Parameters
    ----------
    history : BarcodeHistory or BarcodeTracker
        What :class:`~topo_neurons.BarcodeTracker` recorded (a tracker's ``.history`` is used).
    layer : str, optional
        Which recorded layer (or ``"network"`` when the whole network was tracked); default the
        first recorded one.
    quantiles : sequence of float in [0, 1]
        Quantiles drawn as lines (the median, if present, thicker); the band between the
        outermost pair is shaded.
    ax : matplotlib.axes.Axes, optional
    color : str
    xlabel, title : str

    Returns
    -------
    matplotlib.axes.Axes
        One labelled ``Line2D`` per quantile; its y data are ``np.quantile(deaths, q)`` at each
        recorded step.
    """
    hist = getattr(history, "history", history)
    if not hasattr(hist, "quantiles") or not hasattr(hist, "steps"):
        raise TypeError(
            f"history must be a BarcodeHistory or a BarcodeTracker; got {type(history).__name__}"
        )
    qs = np.asarray(quantiles, dtype=np.float64)
    if qs.ndim != 1 or qs.size == 0 or np.any((qs < 0) | (qs > 1)):
        raise ValueError(f"quantiles must be a non-empty sequence in [0, 1]; got {quantiles!r}")
    qs = np.sort(qs)
    name = layer if layer is not None else (hist.layers[0] if hist.layers else None)
    values = hist.quantiles(name, qs)  # (steps, q), validates the layer name
    steps = np.asarray(hist.steps)
    ax = _new_axes(ax)
    if qs.size >= 2:
        ax.fill_between(steps, values[:, 0], values[:, -1], color=color, alpha=0.15, lw=0)
    for k, q in enumerate(qs):
        median = bool(np.isclose(q, 0.5))
        ax.plot(
            steps,
            values[:, k],
            color=color,
            lw=1.8 if median else 0.9,
            ls="-" if median else "--",
            alpha=1.0 if median else 0.8,
            marker="o" if steps.size <= 30 else None,
            ms=2.5,
            label=f"q = {q:g}",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"death quantiles ({name})")
    ax.legend(frameon=False, fontsize="small", ncols=min(qs.size, 3))
    if title:
        ax.set_title(title)
    return ax


# ----------------------------------------------------------------------------- saving
#: rcParams applied while a figure is written: TrueType (Type 42) fonts in PDF/PS, text in SVG.
_SAVE_RC: dict[str, Any] = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
SAVE_FORMATS: tuple[str, ...] = ("png", "pdf", "svg", "eps", "ps")


def save_figure(fig: Any, path: str | os.PathLike[str], **savefig_kwargs: Any) -> Path:
    """Write ``fig`` atomically, with TrueType (Type 42) fonts embedded in PDF and PostScript.

    The format is the suffix of ``path``. Whatever the surrounding ``rcParams``, the file gets
    ``pdf.fonttype = ps.fonttype = 42`` (no Type 3 fonts, which many journals refuse and whose
    text cannot be edited) and ``svg.fonttype = "none"`` (SVG text stays text). The file appears
    complete or not at all (a temporary beside it, then renamed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Target file; its directory is created. Suffix one of ``png``, ``pdf``, ``svg``, ``eps``,
        ``ps``.
    **savefig_kwargs
        Passed to ``fig.savefig`` (``dpi``, ``bbox_inches``, …).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unknown suffix (listing the valid ones).
    """
    import matplotlib as mpl

    from ._io import atomic_path

    target = Path(path)
    fmt = target.suffix.lstrip(".").lower()
    if fmt not in SAVE_FORMATS:
        raise ValueError(
            f"cannot save a figure as {str(target)!r}: unknown format {fmt!r}; valid formats "
            f"are {SAVE_FORMATS}"
        )
    with mpl.rc_context(_SAVE_RC), atomic_path(target) as tmp:
        fig.savefig(tmp, format=fmt, **savefig_kwargs)
    return target


# ----------------------------------------------------------------------------- style
@contextlib.contextmanager
def paper_style(
    columns: int = 1, *, aspect: float = 0.72, fontsize: float = 8.0
) -> Iterator[dict[str, Any]]:
    """Context in which matplotlib makes figures ready for a paper.

    Inside the ``with`` block: vector output with embedded TrueType fonts (``pdf.fonttype`` and
    ``ps.fonttype`` 42; SVG text kept as text, ``svg.fonttype = "none"``), the Okabe–Ito
    colour-blind-safe palette as the colour cycle, a figure size for one column (3.5 in) or two
    columns (7.16 in), small readable fonts, tight bounding boxes at 300 dpi for raster output.
    Everything is restored on exit (it is a ``matplotlib.rc_context``): no global change.

    Parameters
    ----------
    columns : {1, 2}, default 1
        Width of the figure: single column (3.5 in ≈ 89 mm) or double column (7.16 in ≈ 182 mm).
    aspect : float, default 0.72
        Height / width of the default figure size.
    fontsize : float, default 8
        Base font size in points (labels; ticks and legends one point smaller).

    Yields
    ------
    dict
        The ``rcParams`` applied.

    Examples
    --------
    >>> import topo_neurons as tn
    >>> with tn.paper_style(columns=2) as rc:
    ...     rc["figure.figsize"]
    (7.16, 5.1552)
    """
    import matplotlib as mpl
    from cycler import cycler

    if columns not in COLUMN_WIDTHS:
        raise ValueError(
            f"columns={columns!r} is not valid; valid values are {tuple(COLUMN_WIDTHS)}"
        )
    if not aspect > 0:
        raise ValueError(f"aspect must be positive; got {aspect}")
    width = COLUMN_WIDTHS[columns]
    rc: dict[str, Any] = {
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
        "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
        "figure.figsize": (width, round(width * aspect, 4)),
        "figure.dpi": 150,
        "savefig.dpi": 300,
        "savefig.bbox": "tight",
        "savefig.pad_inches": 0.02,
        "font.size": fontsize,
        "axes.labelsize": fontsize,
        "axes.titlesize": fontsize + 1,
        "xtick.labelsize": fontsize - 1,
        "ytick.labelsize": fontsize - 1,
        "legend.fontsize": fontsize - 1,
        "axes.linewidth": 0.6,
        "lines.linewidth": 1.2,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "figure.constrained_layout.use": True,
    }
    with mpl.rc_context(rc):
        yield rc
