"""Helpers shared by the figure modules: the Axes, what a barcode argument may be, layers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..persistence import Barcode
from ._style import CROSS_LAYER_COLOR, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "DEAD_STYLE",
    "PROFILE_THRESHOLD",
    "ZERO_STYLE",
    "BarcodeLike",
    "HasBarcode",
    "bar_groups",
    "begin",
    "check_layers",
    "edge_groups",
    "layer_colors",
    "layer_order",
    "layer_strip",
    "mark_special_bars",
    "new_axes",
    "unwrap",
]


@runtime_checkable
class HasBarcode(Protocol):
    """Anything that carries a barcode: ``.barcode`` (and, optionally, ``.point_layers``).

    :class:`~topo_neurons.RedundancyReport` and :class:`~topo_neurons.LayerRedundancy` are
    such objects; their ``point_layers`` (the layer of each point) colour the figures.
    """

    @property
    def barcode(self) -> Barcode: ...


#: What the ``plot_*`` functions accept as a barcode.
BarcodeLike = Barcode | HasBarcode


def new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def unwrap(obj: object, what: str = "barcode") -> tuple[Barcode, Sequence[str] | None]:
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


def check_layers(layers: Sequence[str] | np.ndarray | None, n: int) -> np.ndarray | None:
    if layers is None:
        return None
    arr = np.asarray(layers, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(
            f"layers must give one layer name per point: expected shape ({n},), got {arr.shape}"
        )
    return arr.astype(str)


def layer_order(layers: np.ndarray) -> list[str]:
    """Layer names in order of first appearance."""
    _, first = np.unique(layers, return_index=True)
    return [str(layers[i]) for i in sorted(first)]


def layer_colors(names: Sequence[str]) -> dict[str, str]:
    return {name: OKABE_ITO[k % len(OKABE_ITO)] for k, name in enumerate(names)}


def edge_groups(bc: Barcode, layers: np.ndarray) -> np.ndarray:
    """Per finite bar: the layer of both endpoints, or ``""`` when they differ."""
    if len(bc) == 0:
        return np.empty(0, dtype=object)
    a = layers[bc.edges[:, 0]]
    b = layers[bc.edges[:, 1]]
    return np.where(a == b, a, "")


def bar_groups(bc: Barcode, layers: np.ndarray) -> Iterator[tuple[np.ndarray, str, str]]:
    """The finite bars in colour groups: ``(mask over the bars, colour, legend label)``.

    One group per layer (bars whose two endpoints lie in it), in order of first appearance,
    then the bars between layers (grey, ``"between layers"``); empty groups are left out.
    """
    names = layer_order(layers)
    colors = layer_colors(names)
    groups = edge_groups(bc, layers)
    for name in [*names, ""]:
        sel = groups == name
        if np.any(sel):
            yield sel, colors.get(name, CROSS_LAYER_COLOR), name if name else "between layers"


def begin(
    barcode: object, layers: Sequence[str] | np.ndarray | None, ax: Axes | None
) -> tuple[Barcode, np.ndarray | None, Axes]:
    """What a figure of one barcode starts from: the barcode, its points' layers, the Axes.

    The layers are ``layers`` when given, else those the barcode's carrier holds (a report's
    ``point_layers``), else ``None``; they are checked against the number of points.
    """
    bc, default_layers = unwrap(barcode)
    point_layers = check_layers(layers if layers is not None else default_layers, bc.n_points)
    return bc, point_layers, new_axes(ax)


# ----------------------------------------------------------------------------- special bars
#: Above this many finite bars, :func:`~topo_neurons.plot_barcode` draws the sorted-death
#: profile (a filled curve, with the layers as a strip of shares) instead of one bar per death:
#: at a few hundred bars a bar is about a pixel high in a typical figure and colours alias.
PROFILE_THRESHOLD = 300
#: How bars that end at ``d = 1`` exactly are marked: a constant (dead) neuron has no
#: correlation with any other (ρ = 0), so its bar lasts the whole range.
DEAD_STYLE: dict[str, object] = {
    "facecolor": "white",  # black hatching: no layer's colour (black is the 8th layer's)
    "edgecolor": "black",
    "hatch": "xxxx",
    "linewidth": 0.0,
    "label": "d = 1: dead neuron",
}
#: How zero-length bars (``d = 0``: two neurons with ``|ρ| = 1``, duplicates) are marked.
ZERO_STYLE: dict[str, object] = {
    "facecolor": "white",
    "edgecolor": "black",
    "hatch": "....",
    "linewidth": 0.0,
    "label": "d = 0: zero length",
}


def _runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers in sorted ``idx``: ``[(first, last), …]``."""
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def mark_special_bars(
    ax: Axes, sorted_deaths: np.ndarray, dead_x: float, cap: float = 0.06
) -> list:
    """Mark the bars at ``d = 1`` exactly (dead neurons) and at ``d = 0`` (zero length).

    ``sorted_deaths`` are the deaths in the order drawn (rank ``r`` at ``y = r``). Each run of
    ranks of dead bars gets a hatched cap right of the bars' end, from ``dead_x`` (where
    ``d = 1`` lies, in axes coordinates) to ``dead_x + cap``; each run of zero-length bars (which
    draw nothing) a dotted band across the axes. Returns the bands (``Rectangle``, ``gid``
    ``"dead-bars"`` or ``"zero-bars"``, spanning ``[first − 0.5, last + 0.5]``, grown to at
    least 2 % of the ranks: dead ones downwards, zero-length ones upwards), the first of
    each kind labelled with :data:`DEAD_STYLE` / :data:`ZERO_STYLE`'s label.
    """
    bands = []
    for sel, style, gid, x0, x1 in (
        (sorted_deaths == 1.0, DEAD_STYLE, "dead-bars", dead_x, dead_x + cap),
        (sorted_deaths == 0.0, ZERO_STYLE, "zero-bars", 0.0, 1.0),
    ):
        for i, (a, b) in enumerate(_runs(np.flatnonzero(sel))):
            kw = dict(style)
            if i:
                kw["label"] = "_nolegend_"
            # At least 2 % of the ranks high, so that a single bar among thousands shows:
            # dead bars (at the top, under the infinite bar) grow down, zero-length ones up.
            lo, hi, least = a - 0.5, b + 0.5, 0.02 * len(sorted_deaths)
            lo, hi = (min(lo, hi - least), hi) if gid == "dead-bars" else (lo, max(hi, lo + least))
            band = ax.axhspan(lo, hi, xmin=x0, xmax=x1, zorder=3, **kw)
            band.set_gid(gid)
            bands.append(band)
    return bands


def layer_strip(
    ax: Axes,
    masks: Sequence[tuple[np.ndarray, str]],
    x0: float,
    width: float,
    bins: int = 40,
) -> None:
    """A strip of stacked shares: in each bin of ranks, the share of each colour group.

    ``masks`` are ``(boolean mask over the bars in drawn order, colour)``; the strip spans
    ``[x0, x0 + width]`` in axes coordinates and the ranks in data coordinates. Its
    ``PolyCollection`` has ``gid="layer-strip"`` and one rectangle per (bin, non-empty group).
    """
    from matplotlib.collections import PolyCollection

    k = len(masks[0][0]) if masks else 0
    if k == 0:
        return
    edges = np.unique(np.linspace(0, k, min(bins, k) + 1).round().astype(int))
    verts, colors = [], []
    for lo, hi in itertools.pairwise(edges):
        shares = np.array([m[lo:hi].mean() for m, _ in masks])
        left = x0 + width * np.r_[0.0, np.cumsum(shares)[:-1]]
        for (_, col), x, s in zip(masks, left, shares):
            if s > 0:
                y0, y1 = lo - 0.5, hi - 0.5
                verts.append([(x, y0), (x + width * s, y0), (x + width * s, y1), (x, y1)])
                colors.append(col)
    coll = PolyCollection(
        verts, facecolors=colors, linewidths=0, transform=ax.get_yaxis_transform()
    )
    coll.set_gid("layer-strip")
    ax.add_collection(coll, autolim=False)
