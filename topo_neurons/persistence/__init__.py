"""0-dimensional persistence of a distance matrix: barcodes, backends, differentiable deaths."""

from ._barcode import Barcode
from ._differentiable import differentiable_deaths, mst_edges
from ._engine import BACKENDS, zero_persistence
from ._tiled import correlation_persistence
from ._validate import validate_distance_matrix

__all__ = [
    "BACKENDS",
    "Barcode",
    "correlation_persistence",
    "differentiable_deaths",
    "mst_edges",
    "validate_distance_matrix",
    "zero_persistence",
]
