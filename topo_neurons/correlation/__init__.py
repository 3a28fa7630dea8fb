"""Activations → Pearson correlation → dissimilarity between neurons.

The correlation space of neurons: for activations ``A`` of shape ``(m, n)`` (``m`` examples,
``n`` neurons) each column is centred and divided by its Euclidean norm, giving ``Z``; the
Pearson correlation matrix is ``C = ZᵀZ`` and the dissimilarity is

* ``kind="abs"``:  ``d = 1 − |ρ|`` (the code of Ballester et al. for its MNIST runs),
* ``kind="sqrt"``: ``d = sqrt(1 − ρ²)`` (the text of the paper).

Both lie in ``[0, 1]``; ``d = 0`` means perfectly (anti)correlated neurons. The functions here
know nothing of models or of persistence (one direction of imports).

Torch comes first: a torch tensor gives a torch tensor with autograd intact; a numpy array gives
a numpy array (computed through a zero-copy torch view, so both share one implementation).

The modules, one concept each: ``_inputs`` (checks, kinds, constant neurons), ``_normalize``
(the ``Z`` of ``C = ZᵀZ``), ``_gram`` (the blocked, bitwise-symmetric ``ZᵀZ`` on canonical GEMM
tiles), ``_autograd`` (the differentiable path), ``_dissimilarity`` (the public functions).
"""

from __future__ import annotations

from ._autograd import dissimilarity_from_correlation
from ._dissimilarity import correlation_dissimilarity, correlation_matrix
from ._inputs import CONSTANT_POLICIES, KINDS, constant_neurons
from ._normalize import normalized_activations

# Beyond ``__all__``: the names the tiled engine, the regularisers, the analysis, the CLI and
# the benchmarks import from here (``from topo_neurons.correlation import X`` keeps working).
from ._gram import GEMM_TILE, gemm_panels, gram_tile  # noqa: F401  # isort: skip
from ._gram import _map_into as map_into  # noqa: F401  # isort: skip
from ._inputs import ConstantPolicy, Kind, as_real_float, check_kind  # noqa: F401  # isort: skip
from ._inputs import _check_policy  # noqa: F401  # isort: skip
from ._normalize import _prepare, rescale_extreme_columns  # noqa: F401  # isort: skip

__all__ = [
    "CONSTANT_POLICIES",
    "KINDS",
    "constant_neurons",
    "correlation_dissimilarity",
    "correlation_matrix",
    "dissimilarity_from_correlation",
    "normalized_activations",
]
