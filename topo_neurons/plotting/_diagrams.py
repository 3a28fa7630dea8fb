"""Persistence diagrams (birth, death) of 0-dim barcodes: strip or square layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._options import check_choice
from ._common import (
    BarcodeLike,
    bar_groups,
    begin,
)
from ._style import CROSS_LAYER_COLOR, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_diagram"]


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
    barcode: BarcodeLike,
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
    check_choice("layout", layout, layouts)
    bc, point_layers, ax = begin(barcode, layers, ax)
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
        for sel, col, label in bar_groups(bc, point_layers):
            ax.scatter(xs[sel], deaths[sel], color=col, label=label, **kw)
    if infinite:
        yi = top * 1.08 if top > 0 else 0.95
        ax.axhline(yi, ls=":", lw=0.8, color="black", zorder=0, gid="infinite-line")
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
        # Never on the ∞ line: below the diagonal (empty) in the square layout; right of the
        # axes in the strip layout, whose points may fill the whole width.
        if strip:
            kw = {"loc": "upper left", "bbox_to_anchor": (1.0, 1.0)}
        else:
            kw = {"loc": "lower right"}
        ax.legend(frameon=False, fontsize="small", **kw)
    return ax
