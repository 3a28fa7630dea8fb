"""Differentiable persistence regularisers and the baselines they were compared with.

The two topological terms of Ballester, Casacuberta & Escalera (2024) are functions of the
``n − 1`` deaths ``d_k`` of the 0-dimensional persistence of the neurons' correlation space, i.e.
of the edge weights of a minimum spanning tree (MST) of the dissimilarity matrix ``D``:

* :func:`topological_redundancy` (T1) ``= Σ_k (1 − d_k)``;
* :func:`death_spread` (T2) ``= α·std(d) − (1 − α)·mean(d)``.

**How the gradient is computed.** The MST depends on ``D`` only through the order of its entries,
so it is found *without* autograd (the full ``n × n`` matrix ``1 − |ZᵀZ|``, one GEMM, is built
under ``torch.no_grad()`` and handed to the native Prim engine; both kinds share it, since both
decrease strictly with ``|ρ|``); then only the ``n − 1`` edge correlations
``ρ_k = Σ_m Z[m, i_k] Z[m, j_k]`` are recomputed *with* autograd from the normalised activations
``Z``. Values and gradients equal those of autograd through the whole matrix
(:func:`~topo_neurons.differentiable_deaths` of the differentiable ``D``; the tests compare the
two), but the backward costs ``O(m·n)`` instead of ``O(m·n²)`` and no ``n × n`` graph is kept.

**Constant neurons** (e.g. dead ReLUs) have no correlation: they are treated as uncorrelated
with every other neuron (``d = 1``) and receive no gradient; nothing becomes NaN. NaN or Inf in
the activations raises ``ValueError`` naming the example and the neuron.

Baselines: :func:`correlation_penalty` (mean ``|ρ|`` over all pairs), :func:`decov` (Cogswell
et al. 2016), and :class:`L1Penalty` / :class:`L2Penalty` on the weights.

One module per part: ``_base`` (input validation, the base classes), ``_deaths`` (the
differentiable MST deaths), ``_tree_cache`` (the ``refresh_every`` cache of the tree),
``_topological`` (T1 and T2) and ``_baselines``.

References
----------
.. [1] R. Ballester, C. Casacuberta, S. Escalera. "Decorrelating neurons using persistence".
   NeurReps Workshop 2023, PMLR 228, 2024.
.. [2] M. Cogswell, F. Ahmed, R. Girshick, L. Zitnick, D. Batra. "Reducing overfitting in deep
   networks by decorrelating representations". ICLR 2016.
"""

from __future__ import annotations

from ._base import REDUCTIONS, WeightPenalty
from ._baselines import CorrelationPenalty, DeCov, L1Penalty, L2Penalty, correlation_penalty, decov
from ._deaths import edge_deaths
from ._topological import DeathSpread, TopologicalRedundancy, death_spread, topological_redundancy

__all__ = [
    "REDUCTIONS",
    "CorrelationPenalty",
    "DeCov",
    "DeathSpread",
    "L1Penalty",
    "L2Penalty",
    "TopologicalRedundancy",
    "WeightPenalty",
    "correlation_penalty",
    "death_spread",
    "decov",
    "edge_deaths",
    "topological_redundancy",
]
