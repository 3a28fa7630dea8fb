"""0-dimensional persistence of a distance matrix: barcodes, backends, differentiable deaths."""

from ._barcode import Barcode
from ._differentiable import differentiable_deaths, mst_edges
from ._distances import (
    PermutationTestResult,
    barcode_distance,
    barcode_distances,
    barcode_permutation_test,
)
from ._engine import BACKENDS, zero_persistence
from ._schedule import ClusterLostError, connect_scheduler
from ._tiled import correlation_persistence
from ._validate import validate_distance_matrix

# Beyond ``__all__``: the device path's parts that the regularisers use.
from ._engine import resolve_backend  # noqa: F401  # isort: skip
from ._torch_mst import torch_mst_dense  # noqa: F401  # isort: skip

__all__ = [
    "BACKENDS",
    "Barcode",
    "ClusterLostError",
    "PermutationTestResult",
    "barcode_distance",
    "barcode_distances",
    "barcode_permutation_test",
    "connect_scheduler",
    "correlation_persistence",
    "differentiable_deaths",
    "mst_edges",
    "validate_distance_matrix",
    "zero_persistence",
]
