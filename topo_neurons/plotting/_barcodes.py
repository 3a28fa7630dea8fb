"""Barcodes as bars, death distributions (ECDF / histogram), and their evolution in training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .._options import check_choice
from ..persistence import Barcode
from ._common import (
    PROFILE_THRESHOLD,
    BarcodeLike,
    bar_groups,
    begin,
    layer_strip,
    mark_special_bars,
    new_axes,
    unwrap,
)
from ._style import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "BarcodeHistoryLike",
    "HasHistory",
    "plot_barcode",
    "plot_barcode_evolution",
    "plot_death_distribution",
]


class BarcodeHistoryLike(Protocol):
    """What :func:`plot_barcode_evolution` draws: a :class:`~topo_neurons.BarcodeHistory`.

    Recorded ``steps``, tracked ``layers`` and the death ``quantiles`` of a layer at each step.
    """

    @property
    def steps(self) -> Sequence[int]: ...

    @property
    def layers(self) -> tuple[str, ...]: ...

    def quantiles(self, layer: str | None = None, q: Sequence[float] = ...) -> np.ndarray: ...


class HasHistory(Protocol):
    """Anything with a ``.history`` (:class:`BarcodeHistoryLike`).

    A :class:`~topo_neurons.BarcodeTracker`, or the Lightning ``BarcodeLogger``.
    """

    @property
    def history(self) -> BarcodeHistoryLike: ...


def plot_barcode(
    barcode: BarcodeLike,
    *,
    layers: Sequence[str] | np.ndarray | None = None,
    ax: Axes | None = None,
    color: str | None = None,
    infinite: bool = True,
    xlabel: str = "death (correlation dissimilarity)",
    title: str | None = None,
    legend: bool = True,
    form: str = "auto",
    xmax: float | None = None,
) -> Axes:
    """Draw a 0-dimensional barcode: the finite bars ``[0, death)`` sorted by death.

    Bars are sorted by death (shortest at the bottom); the infinite bar ``[0, ∞)`` is drawn on
    top, reaching the right edge, with an arrow head and the label ``∞``. Up to
    :data:`PROFILE_THRESHOLD` (300) bars each bar is drawn; above it (a bar would be under a
    pixel high and colours would alias) the bars are drawn as their *sorted-death profile*: a
    filled curve whose outline is the sorted deaths, with, when layers are known, a strip at
    the right edge giving in each of 40 bins of ranks the share of bars within each layer and
    between layers. Bars that end at ``d = 1`` exactly (a constant, dead neuron: ρ = 0 with
    every other) and zero-length bars (``d = 0``: ``|ρ| = 1``, duplicate neurons, which draw
    nothing) are shaded by hatched bands over their ranks and named in the legend.

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
        Colour of all bars (or of the profile) when ``layers`` is not given.
    infinite : bool, default True
        Draw the infinite bar.
    xlabel, title : str
        Axis label and optional title.
    legend : bool, default True
        Add a legend (layer colours, and the marked bars) when there is something to name.
    form : {"auto", "bars", "profile"}, default "auto"
        ``"auto"``: bars up to :data:`PROFILE_THRESHOLD` finite bars, the profile above.
    xmax : float, optional
        Death drawn at the end of the bars' room (default the largest death): give panels that
        share the death axis the same value.

    Returns
    -------
    matplotlib.axes.Axes
        Bar form: ``containers`` hold one ``BarContainer`` per colour group (``n − 1``
        rectangles in all). Profile form: no containers; the filled curve has
        ``gid="death-profile"`` and the layer strip ``gid="layer-strip"``. Both: the infinite
        bar is a line with ``gid="infinite-bar"`` (x in axes coordinates, to the right edge);
        the marked bands have ``gid="dead-bars"`` / ``"zero-bars"``.

    Examples
    --------
    >>> import numpy as np, topo_neurons as tn
    >>> bc = tn.zero_persistence(np.array([[0, .2, .9], [.2, 0, .5], [.9, .5, 0]]))
    >>> ax = tn.plot_barcode(bc)
    >>> sum(len(c) for c in ax.containers)
    2
    """
    from matplotlib.patches import Patch

    check_choice("form", form, ("auto", "bars", "profile"))
    bc, point_layers, ax = begin(barcode, layers, ax)
    k = len(bc)
    deaths = np.asarray(bc.deaths, dtype=np.float64)
    order = np.argsort(deaths, kind="stable")
    y = np.empty(k, dtype=np.float64)
    y[order] = np.arange(k)
    profile = form == "profile" or (form == "auto" and k > PROFILE_THRESHOLD)
    groups = list(bar_groups(bc, point_layers)) if point_layers is not None else []
    handles = [Patch(color=col, label=label) for _, col, label in groups]
    top = float(xmax) if xmax is not None else float(deaths.max()) if k else 0.0
    # Deaths take the left 80 % (86 % without a strip) of the axes; then the caps of the dead
    # bars; the profile's layer strip takes [0.88, 0.98].
    span = 0.80 if profile and groups else 0.86
    right = top / span if top > 0 else 1.0
    if profile:
        ys = np.column_stack([np.arange(k) - 0.5, np.arange(k) + 0.5]).ravel()
        xs = np.repeat(deaths[order], 2)
        face = "0.82" if groups else (color or OKABE_ITO[0])
        ax.fill_betweenx(ys, 0.0, xs, color=face, alpha=1.0 if groups else 0.35, lw=0).set_gid(
            "death-profile"
        )
        ax.plot(xs, ys, color="0.25" if groups else face, lw=0.8)
        if groups:
            masks = [(sel[order], col) for sel, col, _ in groups]
            layer_strip(ax, masks, x0=0.88, width=0.1)
    elif point_layers is None:
        height = 0.8 if k <= 200 else 1.0
        ax.barh(
            y, deaths, left=0.0, height=height, color=color or OKABE_ITO[0], label="finite bars"
        )
    else:
        height = 0.8 if k <= 200 else 1.0
        for sel, col, label in groups:
            ax.barh(y[sel], deaths[sel], left=0.0, height=height, color=col, label=label)
    bands = mark_special_bars(ax, deaths[order], dead_x=1.0 / right)
    handles += [b for b in bands if not b.get_label().startswith("_")]
    ax.set_xlim(0.0, right)
    shared = len(ax.get_shared_x_axes().get_siblings(ax)) > 1  # ticks are the siblings' too
    if top > 0 and not shared:  # no death ticks under the caps and the strip
        ax.set_xticks([t for t in ax.get_xticks() if 0.0 <= t <= top * (1 + 1e-9)])
        ax.spines["bottom"].set_bounds(0.0, top)
        ax.set_xlim(0.0, right)
    if infinite:
        # x in axes coordinates: the infinite bar always reaches the right edge (also when the
        # x axis is shared with other panels); y in data coordinates.
        trans = ax.get_yaxis_transform()
        # A gap of 1.5 % of the ranks above the last bar (clear of the dead bars' caps).
        yi = k - 0.5 + max(1.0, 0.015 * k)
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
    ax.set_ylim(-1.0, k + (max(2.3, 0.095 * (k + 1)) if infinite else 0.0))
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{k} finite bars, sorted by death")
    if title:
        ax.set_title(title)
    if legend and (groups or bands):
        # Sorted deaths leave the lower right empty; a profile's strip sits right of 0.88.
        kw = {"loc": "lower right", "bbox_to_anchor": (0.87 if profile and groups else 1.0, 0.0)}
        ax.legend(
            handles=handles,
            **kw,
            frameon=False,
            fontsize="small",
            title="MST edge within" if groups else None,
            title_fontsize="small",
        )
    return ax


def plot_death_distribution(
    barcodes: BarcodeLike | Mapping[str, BarcodeLike] | Sequence[BarcodeLike],
    labels: str | Sequence[str] | None = None,
    *,
    style: str = "ecdf",
    bins: int | Sequence[float] = 30,
    ax: Axes | None = None,
    colors: Sequence[str] | None = None,
    xlabel: str = "death (correlation dissimilarity)",
    title: str | None = None,
) -> Axes:
    """The death distribution of one barcode, or those of several overlaid (none vs T1 vs T2).

    Parameters
    ----------
    barcodes : barcode, mapping label → barcode, or sequence of barcodes
        One barcode (a :class:`~topo_neurons.Barcode` or an object with ``.barcode``, such as
        a :class:`~topo_neurons.RedundancyReport`), or several to compare. A mapping gives the
        labels.
    labels : str or sequence of str, optional
        Legend labels for a sequence (default ``"barcode 0"``, …); not allowed with a mapping.
        A single barcode takes one label (a str or a one-element sequence); without one it is
        labelled ``"barcode"`` and drawn without a legend.
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
        Where some bar dies at ``d = 1`` exactly (a constant, dead neuron), a dotted vertical
        line at 1 (``gid="dead-line"``) is labelled with the number of such bars per barcode.
    """
    styles = ("ecdf", "hist")
    check_choice("style", style, styles)
    single = isinstance(barcodes, Barcode) or isinstance(
        getattr(barcodes, "barcode", None), Barcode
    )
    if single:
        given = [labels] if isinstance(labels, str) else None if labels is None else list(labels)
        if given is not None and len(given) != 1:
            raise ValueError(f"got 1 barcode but {len(given)} labels")
        names = [str(given[0])] if given else ["barcode"]
        items = [barcodes]
    elif isinstance(barcodes, Mapping):
        if labels is not None:
            raise ValueError("labels are taken from the mapping's keys; do not pass both")
        names = [str(k) for k in barcodes]
        items = list(barcodes.values())
    else:
        items = list(barcodes)
        if labels is None:
            names = [f"barcode {i}" for i in range(len(items))]
        else:
            names = [labels] if isinstance(labels, str) else [str(x) for x in labels]
        if len(names) != len(items):
            raise ValueError(f"got {len(items)} barcodes but {len(names)} labels")
    if not items:
        raise ValueError("plot_death_distribution needs at least one barcode")
    bcs = [unwrap(b, f"barcode {name!r}")[0] for b, name in zip(items, names)]
    palette = list(colors) if colors is not None else list(OKABE_ITO)
    if len(palette) < len(bcs):
        raise ValueError(f"got {len(palette)} colours for {len(bcs)} barcodes")
    ax = new_axes(ax)
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
    # Bars at d = 1 exactly (constant, dead neurons) make a jump at 1 that reads as a feature:
    # a dotted line names it.
    n_dead = [int(np.sum(d == 1.0)) for d in all_deaths]
    if any(n_dead):
        counts = ", ".join(str(k) for k in n_dead)
        ax.axvline(
            1.0, color="black", ls=":", lw=0.8, gid="dead-line", label=f"d = 1: dead ({counts})"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of bars with death ≤ x" if style == "ecdf" else "density")
    if style == "ecdf":
        ax.set_ylim(0.0, 1.02)
    if not single or labels is not None or any(n_dead):
        ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    return ax


def plot_barcode_evolution(
    history: BarcodeHistoryLike | HasHistory,
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
        Quantiles drawn as lines, each in its own colour (the Okabe–Ito palette) and dash (the
        median, if present, solid and thicker); the band between the outermost pair is shaded.
    ax : matplotlib.axes.Axes, optional
    color : str
        Colour of the band between the outermost quantiles.
    xlabel, title : str

    Returns
    -------
    matplotlib.axes.Axes
        One labelled ``Line2D`` per quantile; its y data are ``np.quantile(deaths, q)`` at each
        recorded step. The legend sits outside the axes, right of them (clear of every line);
        the y label names the layer (``"death quantiles, layer fc1"``) unless its name is a
        bare index (``nn.Sequential``'s ``"0"``) or ``"network"``: then ``"death (quantiles)"``.
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
    ax = new_axes(ax)
    if qs.size >= 2:
        ax.fill_between(steps, values[:, 0], values[:, -1], color=color, alpha=0.12, lw=0)
    dashes = ["--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3))]
    others = iter(range(len(qs)))
    for k, q in enumerate(qs):
        median = bool(np.isclose(q, 0.5))
        ls = "-" if median else dashes[next(others) % len(dashes)]
        ax.plot(
            steps,
            values[:, k],
            color=OKABE_ITO[k % len(OKABE_ITO)],
            lw=1.8 if median else 1.1,
            ls=ls,
            marker="o" if steps.size <= 30 else None,
            ms=2.5,
            label=f"q = {q:g}",
        )
    ax.set_xlabel(xlabel)
    plain = name is None or str(name).isdigit() or name == "network"
    ax.set_ylabel("death (quantiles)" if plain else f"death quantiles, layer {name}")
    # Outside, right of the axes: never on a line (the 0.95 quantile runs along the top).
    ax.legend(
        frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1
    )
    if title:
        ax.set_title(title)
    return ax
