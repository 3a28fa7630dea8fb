"""Redundancy reports of trained networks: :func:`analyse` → :class:`RedundancyReport`.

The neurons of a model (every leaf module with parameters by default, or chosen layers, all
neurons or a sample) are run over a whole data set once; their Pearson correlations are
accumulated in one streaming pass (:class:`StreamingCorrelation`: running sums in float64, memory
``O(n²)`` whatever the number of examples), turned into the correlation dissimilarity and into
the 0-dimensional barcode of the whole network and of each layer. The report summarises, for the
network and per layer, how redundant the neurons are.

One module per part: ``_streaming`` (:class:`StreamingCorrelation`), ``_report`` (the report
types and their JSON / Markdown), ``_build`` (a report from correlations or activations: death
summaries, redundant pairs, effective neurons), ``_batches`` (feeding a model its data:
batches, masks, dtype and device) and ``_analyse`` (:func:`analyse`: the dense and tiled
paths).
"""

from ._analyse import analyse
from ._build import death_summary
from ._report import SUMMARY_KEYS, LayerRedundancy, RedundancyReport, RedundantPair
from ._streaming import StreamingCorrelation

__all__ = [
    "SUMMARY_KEYS",
    "LayerRedundancy",
    "RedundancyReport",
    "RedundantPair",
    "StreamingCorrelation",
    "analyse",
    "death_summary",
]
