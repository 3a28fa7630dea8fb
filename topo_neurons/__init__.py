"""topo_neurons: the topology of a neural network's neurons.

Neurons are points, ``1 − |ρ|`` (or ``sqrt(1 − ρ²)``) of their activations is their distance,
and the 0-dimensional Vietoris–Rips persistence of that space (a minimum spanning tree) gives
diagnostics, differentiable regularisers and figures.
"""

from importlib.metadata import PackageNotFoundError, version

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
    FixedSelection,
    ImportanceSampling,
    NeuronIndex,
    RandomSampling,
)
from .correlation import constant_neurons, correlation_dissimilarity, correlation_matrix
from .distributed import gather_activations
from .experiments import (
    critical_difference,
    friedman_test,
    load_task,
    make_model,
    plot_cd_diagram,
    reproduce,
)
from .persistence import (
    Barcode,
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
    "FixedSelection",
    "ImportanceSampling",
    "L1Penalty",
    "L2Penalty",
    "LayerRedundancy",
    "NeuronIndex",
    "RandomSampling",
    "RedundancyReport",
    "RedundantPair",
    "Regularized",
    "RegularizedOutput",
    "StreamingCorrelation",
    "TopologicalRedundancy",
    "__version__",
    "analyse",
    "constant_neurons",
    "correlation_dissimilarity",
    "correlation_matrix",
    "correlation_persistence",
    "critical_difference",
    "differentiable_deaths",
    "friedman_test",
    "gather_activations",
    "load_task",
    "make_model",
    "paper_style",
    "plot_barcode",
    "plot_barcode_evolution",
    "plot_cd_diagram",
    "plot_death_distribution",
    "plot_dendrogram",
    "plot_diagram",
    "plot_mst",
    "reproduce",
    "save_figure",
    "zero_persistence",
]
