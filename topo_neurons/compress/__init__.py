"""Acting on redundancy: fold redundant neurons into the neurons they duplicate.

:func:`fold_redundant` finds each layer's single-linkage clusters (the MST of the correlation
dissimilarity of its post-activation outputs, cut at a threshold), keeps one representative
per cluster and folds every other member into the consumer's weights by its least-squares
affine map from the kept neurons; :class:`FoldReport` records every fold. One module per
part: ``_graph`` (the consumer of a layer, found with torch.fx), ``_fold``
(:func:`fold_redundant`: calibration, maps, weight surgery on a copy) and ``_report`` (the
report types, JSON and Markdown).
"""

from ._fold import fold_redundant
from ._graph import FoldSite, foldable_layers
from ._report import ClusterFold, FoldReport, LayerFold, NeuronFold

__all__ = [
    "ClusterFold",
    "FoldReport",
    "FoldSite",
    "LayerFold",
    "NeuronFold",
    "fold_redundant",
    "foldable_layers",
]
