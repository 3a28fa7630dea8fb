"""Helpers shared by the figure modules: the Axes, what a barcode argument may be, layers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ..persistence import Barcode
from ._style import CROSS_LAYER_COLOR, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "BarcodeLike",
    "HasBarcode",
    "bar_groups",
    "begin",
    "check_layers",
    "edge_groups",
    "layer_colors",
    "layer_order",
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
