"""topo_neurons: the topology of a neural network's neurons.

Neurons are points, ``1 − |ρ|`` (or ``sqrt(1 − ρ²)``) of their activations is their distance,
and the 0-dimensional Vietoris–Rips persistence of that space (a minimum spanning tree) gives
diagnostics, differentiable regularisers and figures.

The root exports the toolkit only. The paper's harness (``reproduce``, ``load_task``,
``make_model``, ``friedman_test``, ``critical_difference``, ``plot_cd_diagram``) lives in
:mod:`topo_neurons.experiments`, a client of this API; ``import topo_neurons`` does not import
it. Those names still resolve from the root for one release, with a ``DeprecationWarning``.
"""

from importlib.metadata import PackageNotFoundError, version

from ._finite import NonFiniteActivationsError
from .analysis import (
    LayerRedundancy,
    RedundancyReport,
    RedundantPair,
    StreamingCorrelation,
    analyse,
)
from .capture import (
    ActivationRecorder,
    AllNeurons,
    FewExamplesWarning,
    FixedSelection,
    ImportanceSampling,
    NeuronIndex,
    RandomSampling,
)
from .compress import FoldReport, fold_redundant
from .correlation import constant_neurons, correlation_dissimilarity, correlation_matrix
from .distributed import gather_activations
from .persistence import (
    Barcode,
    PermutationTestResult,
    barcode_distance,
    barcode_distances,
    barcode_permutation_test,
    correlation_persistence,
    differentiable_deaths,
    zero_persistence,
)
from .plotting import (
    paper_style,
    plot_barcode,
    plot_barcode_evolution,
    plot_death_distribution,
    plot_dendrogram,
    plot_diagram,
    plot_mst,
    save_figure,
)
from .regularizers import (
    CorrelationPenalty,
    DeathSpread,
    DeCov,
    L1Penalty,
    L2Penalty,
    TopologicalRedundancy,
    WeightPenalty,
)
from .tracking import BarcodeHistory, BarcodeTracker
from .training import Regularized, RegularizedOutput

try:
    __version__ = version("topo_neurons")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "ActivationRecorder",
    "AllNeurons",
    "Barcode",
    "BarcodeHistory",
    "BarcodeTracker",
    "CorrelationPenalty",
    "DeCov",
    "DeathSpread",
    "FewExamplesWarning",
    "FixedSelection",
    "FoldReport",
    "ImportanceSampling",
    "L1Penalty",
    "L2Penalty",
    "LayerRedundancy",
    "NeuronIndex",
    "NeuronPersistence",
    "NonFiniteActivationsError",
    "PermutationTestResult",
    "RandomSampling",
    "RedundancyReport",
    "RedundantPair",
    "Regularized",
    "RegularizedOutput",
    "StreamingCorrelation",
    "TopologicalRedundancy",
    "WeightPenalty",
    "__version__",
    "analyse",
    "barcode_distance",
    "barcode_distances",
    "barcode_permutation_test",
    "constant_neurons",
    "correlation_dissimilarity",
    "correlation_matrix",
    "correlation_persistence",
    "differentiable_deaths",
    "fold_redundant",
    "gather_activations",
    "paper_style",
    "plot_barcode",
    "plot_barcode_evolution",
    "plot_death_distribution",
    "plot_dendrogram",
    "plot_diagram",
    "plot_mst",
    "save_figure",
    "zero_persistence",
]

#: Names of :mod:`topo_neurons.experiments` the root served before; deprecated here.
_MOVED_TO_EXPERIMENTS = frozenset(
    {
        "critical_difference",
        "friedman_test",
        "load_task",
        "make_model",
        "plot_cd_diagram",
        "reproduce",
    }
)


def __getattr__(name: str) -> object:
    """The experiment names moved to :mod:`topo_neurons.experiments`, with a warning."""
    if name in _MOVED_TO_EXPERIMENTS:
        import importlib
        import warnings

        warnings.warn(
            f"topo_neurons.{name} is deprecated and will be removed in the next release; "
            f"import from topo_neurons.experiments (from topo_neurons.experiments import {name})",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("topo_neurons.experiments"), name)
    if name == "NeuronPersistence":  # scikit-learn loads on first use, not on import
        from .integrations.sklearn import NeuronPersistence

        return NeuronPersistence
    raise AttributeError(f"module 'topo_neurons' has no attribute {name!r}")
