"""Figures of 0-dimensional persistence: barcodes, diagrams, dendrograms, trees, evolution.

Every function takes ``ax=None`` (a new figure is made when omitted), draws on that Axes only,
returns it, never calls ``show()`` and never changes global style; :func:`paper_style` is the one
place that sets ``rcParams``, inside a context. matplotlib is imported inside the functions, so
``import topo_neurons`` never loads ``matplotlib.pyplot``.

Anything that carries a barcode can be plotted: a :class:`~topo_neurons.Barcode`, or an object
with a ``barcode`` attribute and optionally ``point_layers`` (a
:class:`~topo_neurons.RedundancyReport` or one of its layer entries, see :class:`HasBarcode`),
whose layers are then used for colours by default.

One module per family of figures: ``_barcodes`` (bars, death distributions, evolution),
``_diagrams`` (persistence diagrams), ``_trees`` (single-linkage hierarchy and dendrogram),
``_mst`` (the tree in the plane), ``_fold`` (accuracy against neurons folded away);
``_style`` holds the palette, :func:`paper_style` and
:func:`save_figure`, ``_common`` what they share.
"""

from ._barcodes import (
    BarcodeHistoryLike,
    HasHistory,
    plot_barcode,
    plot_barcode_evolution,
    plot_death_distribution,
)
from ._common import BarcodeLike, HasBarcode
from ._diagrams import plot_diagram
from ._fold import plot_fold_accuracy, plot_fold_layers
from ._mst import plot_mst
from ._style import (
    COLUMN_WIDTHS,
    CROSS_LAYER_COLOR,
    OKABE_ITO,
    SAVE_FORMATS,
    paper_style,
    save_figure,
)
from ._trees import linkage_matrix, plot_dendrogram

__all__ = [
    "COLUMN_WIDTHS",
    "CROSS_LAYER_COLOR",
    "OKABE_ITO",
    "SAVE_FORMATS",
    "BarcodeHistoryLike",
    "BarcodeLike",
    "HasBarcode",
    "HasHistory",
    "linkage_matrix",
    "paper_style",
    "plot_barcode",
    "plot_barcode_evolution",
    "plot_death_distribution",
    "plot_dendrogram",
    "plot_diagram",
    "plot_fold_accuracy",
    "plot_fold_layers",
    "plot_mst",
    "save_figure",
]
